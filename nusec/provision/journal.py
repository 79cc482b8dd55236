"""Per-board local journal: what each step finished with, so a re-run resumes where it stopped.

Layout: ``<journal dir>/<UID hex>/journal.jsonl`` (one JSON object per line, appended and
fsync'ed: ``{"ts", "step", "event": "start"|"done", "data"}``) next to the artifacts the steps
produce (board certificate, signed firmware, ...), which are written atomically *before* the
``done`` line that names them. A torn last line (power cut mid-append) is ignored. A probe id
maps to a UID through ``probes/<probe>.uid`` so a board whose debugger is already locked can
still be found. ``journal.lock`` (flock) keeps two runs off the same board.

The journal is a cache of progress, not the truth: every step still checks the board (OTP is
read before any write), so a lost or stale journal can cost time but never a double burn.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import IO, Any

from nusec.provision.steps import STEP_IDS, step_by_id
from pki import files


class JournalError(RuntimeError):
    """The journal cannot be used (another run holds it, or it names a different board)."""


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (private, 0600) via a fsync'ed temp file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(path, data, mode=0o600)


def remember_probe(journal_dir: Path, probe_id: str, uid: bytes) -> None:
    """Record which board UID sits behind ``probe_id`` (for runs after the debugger is locked)."""
    atomic_write(journal_dir / "probes" / f"{_safe_name(probe_id)}.uid", uid.hex().upper().encode())


def uid_for_probe(journal_dir: Path, probe_id: str) -> bytes | None:
    """The UID last seen behind ``probe_id``, or None."""
    path = journal_dir / "probes" / f"{_safe_name(probe_id)}.uid"
    if not path.is_file():
        return None
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


class Journal:
    """The journal of one board. Use as a context manager (holds the board's lock)."""

    def __init__(self, journal_dir: Path, uid: bytes) -> None:
        self.uid = bytes(uid)
        self.dir = journal_dir / uid.hex().upper()
        self.path = self.dir / "journal.jsonl"
        self._lock_fh: IO[bytes] | None = None
        self._done: dict[str, dict[str, Any]] = {}
        self._started: set[str] = set()

    def __enter__(self) -> Journal:
        self.dir.mkdir(parents=True, exist_ok=True)
        fh = (self.dir / "journal.lock").open("ab")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise JournalError(
                f"board {self.uid.hex().upper()} is being provisioned by another run"
            ) from None
        self._lock_fh = fh
        self._load()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def _load(self) -> None:
        self._done.clear()
        self._started.clear()
        if not self.path.is_file():
            return
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a power cut: that step simply did not finish
            if not isinstance(rec, dict) or rec.get("step") not in STEP_IDS:
                continue
            if rec.get("event") == "done":
                self._done[rec["step"]] = dict(rec.get("data") or {})
            elif rec.get("event") == "start":
                self._started.add(rec["step"])

    def _append(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, separators=(",", ":"), sort_keys=True) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def is_done(self, step_id: str) -> bool:
        return step_by_id(step_id).id in self._done

    def was_started(self, step_id: str) -> bool:
        return step_id in self._started

    def data(self, step_id: str) -> dict[str, Any]:
        """What ``step_id`` recorded when it finished; ``JournalError`` if it has not."""
        if step_id not in self._done:
            raise JournalError(f"step {step_id!r} has not finished for board {self.uid.hex().upper()}")
        return self._done[step_id]

    def first_unfinished(self) -> str | None:
        """The first step (seed order) not yet done, or None when the board is finished."""
        return next((s for s in STEP_IDS if s not in self._done), None)

    def start(self, step_id: str) -> None:
        step_by_id(step_id)
        self._started.add(step_id)
        self._append({"ts": time.time(), "step": step_id, "event": "start"})

    def done(self, step_id: str, data: dict[str, Any] | None = None) -> None:
        step_by_id(step_id)
        payload = dict(data or {})
        self._append({"ts": time.time(), "step": step_id, "event": "done", "data": payload})
        self._done[step_id] = payload

    def artifact(self, name: str) -> Path:
        """Path of an artifact file in this board's journal folder."""
        return self.dir / _safe_name(name)

    def save_artifact(self, name: str, data: bytes) -> Path:
        """Atomically store an artifact (before the ``done`` line that relies on it)."""
        path = self.artifact(name)
        atomic_write(path, data)
        return path

    def attempt(self, step_id: str) -> int:
        """How many times ``step_id`` has been started (for fresh idempotency keys per attempt)."""
        if not self.path.is_file():
            return 0
        n = 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("step") == step_id and rec.get("event") == "start":
                    n += 1
        return n
