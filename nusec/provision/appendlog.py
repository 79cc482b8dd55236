"""Append-only JSON-lines files (the journal, the OTP program log) that survive tears and full disks.

Why one module: both files are appended one fsync'ed line at a time, and a power cut or a kill
can leave a last line without its newline. Appending onto it would glue the next record to the
torn one and lose both, so every append first cuts a torn tail back to the last newline. Reading
never raises on bad bytes: undecodable or unparsable lines are reported, the caller decides. Any
``OSError`` (disk full, permission) becomes one ``DiskError`` line naming the path.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nusec.provision.errors import DiskError

log = logging.getLogger(__name__)


def disk_error(path: Path, exc: OSError, what: str = "write") -> DiskError:
    why = exc.strerror or type(exc).__name__
    code = f" (errno {exc.errno})" if exc.errno else ""
    return DiskError(f"cannot {what} {path}: {why}{code}; free space or fix permissions, then re-run")


@dataclass
class Lines:
    """What reading an append-only file found."""

    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[int] = field(
        default_factory=list
    )  # 1-based numbers of complete lines that are not JSON objects
    torn_tail: bool = False  # the last line had no newline (an interrupted append)


def read_lines(path: Path) -> Lines:
    """Every complete line of ``path`` parsed as a JSON object; never raises on the content."""
    out = Lines()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise disk_error(path, exc, "read") from None
    body, sep, tail = raw.rpartition(b"\n")
    if not sep:
        body, tail = b"", raw
    out.torn_tail = bool(tail)
    if not body:
        return out
    for n, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            out.bad_lines.append(n)
            continue
        if isinstance(rec, dict):
            out.records.append(rec)
        else:
            out.bad_lines.append(n)
    return out


def repair_tail(path: Path) -> bool:
    """Cut a torn last line (no newline) off ``path``; True if there was one."""
    try:
        with path.open("rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return False
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return False
            keep = 0
            pos = size
            while pos > 0:
                step = min(4096, pos)
                pos -= step
                fh.seek(pos)
                chunk = fh.read(step)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    keep = pos + i + 1
                    break
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise disk_error(path, exc) from None
    log.warning("%s: cut a torn last line (interrupted append) before appending", path)
    return True


def append_line(path: Path, rec: dict[str, Any], *, sync: bool = True) -> None:
    """Append one JSON line (fsync'ed), after repairing a torn tail. ``DiskError`` on any OSError."""
    line = (json.dumps(rec, separators=(",", ":"), sort_keys=True) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, line)
            if written != len(line):  # a short write on a full disk: cut it off again
                os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
                raise OSError(28, os.strerror(28))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except DiskError:
        raise
    except OSError as exc:
        repair_tail_quietly(path)
        raise disk_error(path, exc) from None


def repair_tail_quietly(path: Path) -> None:
    try:
        repair_tail(path)
    except DiskError:
        pass
