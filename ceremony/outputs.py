"""Where the ceremony's files go: checked up front, built in a staging folder, published at once.

Why a staging folder and one rename: the outputs of an interrupted ceremony must never look
like a finished one. Every file is written into ``.<directory>.partial`` next to the final
folder (each file itself via ``pki.files.write_atomic``), and only the last step renames the whole
folder to ``outputs.directory``. The final folder must not exist before the ceremony starts
(checked before any HSM action); a stale staging folder from an interrupted run is removed when
the next run starts, since it was never published (and may hold custodian shares of a KEK that
no published output uses).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ceremony.errors import OutputExistsError
from pki import files


@dataclass(frozen=True)
class OutputPlan:
    """The final folder, its staging twin, and each output's file name."""

    final_dir: Path
    names: dict[str, str]

    @property
    def staging_dir(self) -> Path:
        return self.final_dir.parent / f".{self.final_dir.name}.partial"

    def staged(self, key: str) -> Path:
        """Where output ``key`` (a field of ``outputs``) is written during the ceremony."""
        return self.staging_dir / self.names[key]

    def final(self, key: str) -> Path:
        """Where output ``key`` is after publishing."""
        return self.final_dir / self.names[key]


def refuse_existing(plan: OutputPlan) -> None:
    """Refuse to start if the outputs folder exists (even empty): nothing is ever overwritten."""
    if plan.final_dir.exists() or plan.final_dir.is_symlink():
        raise OutputExistsError(f"output folder {plan.final_dir} already exists; refusing to overwrite it")
    parent = plan.final_dir.parent
    if parent.exists() and not parent.is_dir():
        raise OutputExistsError(f"{parent} is not a folder")


def planned_outputs(
    directory: Path, files: dict[str, str], *, rehearsal: bool, rehearsal_dir: Path | None
) -> OutputPlan:
    """One ceremony run's output plan: the reviewed folder, or in rehearsal mode a folder of that
    name under the rehearsal folder (a fresh temporary one if none is given); refused at once if
    any output already exists, since outputs are never overwritten."""
    if rehearsal:
        base = (rehearsal_dir or Path(tempfile.mkdtemp(prefix="nusec-rehearsal-"))).resolve()
        directory = base / directory.name
    plan = OutputPlan(directory, files)
    refuse_existing(plan)
    return plan


@contextmanager
def exclusive(plan: OutputPlan) -> Iterator[None]:
    """Hold an exclusive lock on the outputs' parent folder for the whole run.

    Why: a run removes a stale staging folder; without the lock, a second run started by
    mistake at the same time would remove the first one's live staging folder. ``flock`` on the
    folder itself leaves no lock file behind and is released if the process dies."""
    parent = plan.final_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputExistsError(f"another ceremony is running with outputs in {parent}") from None
        yield
    finally:
        os.close(fd)


def wipe_file(path: Path) -> None:
    """Overwrite a file's bytes in place (zeros, fsync), then unlink it.

    Why: staging files hold custodian shares and wrapped keys; a plain unlink leaves their bytes
    in whatever still refers to the inode (a hard link, an open descriptor, a snapshot taken
    later of a file system that reuses nothing). On journaling or copy-on-write file systems and
    SSDs old blocks may survive anyway: docs/ceremony.md says so and asks for an encrypted,
    throwaway ceremony disk."""
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY)
    try:
        written = 0
        while written < size:
            written += os.write(fd, bytes(min(65536, size - written)))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()


def wipe_tree(folder: Path) -> list[dict[str, object]]:
    """Wipe every file under ``folder`` (``wipe_file``) and remove the folder; returns what was
    destroyed (relative path, size, SHA-256) for the transcript. Symlinks are unlinked, never
    followed."""
    destroyed: list[dict[str, object]] = []
    if not folder.exists():
        return destroyed
    for path in sorted(folder.rglob("*"), key=lambda p: (-len(p.parts), str(p))):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            path.unlink()
        elif path.is_file():
            data = path.read_bytes()
            destroyed.append({"file": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            wipe_file(path)
        elif path.is_dir():
            path.rmdir()
    folder.rmdir()
    return sorted(destroyed, key=lambda d: str(d["file"]))


def start_staging(plan: OutputPlan) -> list[dict[str, object]] | None:
    """Create a fresh, private staging folder. A stale one (an interrupted run's) is wiped first;
    returns what it held (``wipe_tree``), or None if there was none."""
    plan.final_dir.parent.mkdir(parents=True, exist_ok=True)
    destroyed = wipe_tree(plan.staging_dir) if plan.staging_dir.exists() else None
    plan.staging_dir.mkdir(mode=0o700)
    return destroyed


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``path`` atomically (tmp + fsync + link): it exists complete, or not at all, and an
    existing file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        files.write_atomic(path, data, mode=mode, overwrite=False)
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists; refusing to overwrite it") from None


def publish(plan: OutputPlan) -> None:
    """Rename the staging folder to the final folder (one atomic step on the same filesystem)."""
    if plan.final_dir.exists():
        raise OutputExistsError(
            f"output folder {plan.final_dir} appeared during the ceremony; not publishing"
        )
    os.rename(plan.staging_dir, plan.final_dir)
    fd = os.open(plan.final_dir.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard_staging(plan: OutputPlan) -> None:
    """Wipe the staging folder after a failed run (idempotent); a file that cannot be wiped is
    left for the next run, which wipes it and records it."""
    try:
        wipe_tree(plan.staging_dir)
    except OSError:
        pass
