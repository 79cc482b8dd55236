"""Per-board local journal: what each step finished with, so a re-run resumes where it stopped.

Layout: ``<journal dir>/<UID hex>/journal.jsonl`` (one JSON object per line, appended and
fsync'ed: ``{"ts", "step", "event": "start"|"intent"|"done", "data"}``) next to the artifacts the
steps produce (board certificate, signed firmware, ...), which are written atomically *before*
the ``done`` line that names them. A torn last line (power cut mid-append) is cut off before the
next append; a journal with a damaged line elsewhere (bad bytes, not JSON) is set aside as
``journal.jsonl.damaged-N`` and the run rebuilds its progress from the board and the service.
A probe id maps to the UID last seen behind it through ``probes/<probe>.uid`` (for ``nusec
inspect`` of a locked board). ``journal.lock`` (flock) keeps two runs off the same board.

The journal is a cache of progress, not the truth: every run reads the board first and checks a
step's record against it before skipping the step, so a lost, stale or damaged journal costs
time but never a double burn. The one thing only the journal knows is the keygen intent: a key
in the identity slot that no intent record (and no certificate of the service) explains is a
planted key (``BoardTampered``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from pathlib import Path
from typing import IO, Any

from nusec.provision import appendlog
from nusec.provision.steps import STEP_IDS, step_by_id
from pki import files


class JournalError(RuntimeError):
    """The journal cannot be used (another run holds it, or it names a different board)."""


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (private, 0600) via a fsync'ed temp file and a rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, data, mode=0o600)
    except OSError as exc:
        raise appendlog.disk_error(path, exc) from None


def _probe_file(journal_dir: Path, probe_id: str) -> Path:
    from nusec.provision.link import normalise_probe_id

    return journal_dir / "probes" / f"{_safe_name(normalise_probe_id(probe_id))}.uid"


def remember_probe(journal_dir: Path, probe_id: str, uid: bytes) -> None:
    """Record which board UID sits behind ``probe_id`` (a hint for ``nusec inspect`` of a locked
    board; ``nusec provision`` always asks the board itself)."""
    path = _probe_file(journal_dir, probe_id)
    try:
        if path.is_file() and path.read_bytes() == uid.hex().upper().encode():
            return
    except OSError:
        pass
    atomic_write(path, uid.hex().upper().encode())


def uid_for_probe(journal_dir: Path, probe_id: str) -> bytes | None:
    """The UID last seen behind ``probe_id``, or None (also for an unreadable or damaged file)."""
    path = _probe_file(journal_dir, probe_id)
    try:
        uid = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return uid if len(uid) == 12 else None


class Journal:
    """The journal of one board. Use as a context manager (holds the board's lock)."""

    def __init__(self, journal_dir: Path, uid: bytes) -> None:
        self.uid = bytes(uid)
        self.dir = journal_dir / uid.hex().upper()
        self.path = self.dir / "journal.jsonl"
        self._lock_fh: IO[bytes] | None = None
        self._done: dict[str, dict[str, Any]] = {}
        self._started: dict[str, int] = {}
        self._intents: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []  # what loading found and repaired, for the operator

    def __enter__(self) -> Journal:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fh = (self.dir / "journal.lock").open("ab")
        except OSError as exc:
            raise appendlog.disk_error(self.dir / "journal.lock", exc) from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise JournalError(
                f"board {self.uid.hex().upper()} is being provisioned by another run"
            ) from None
        self._lock_fh = fh
        try:
            self._load()
        except BaseException:
            self.__exit__()
            raise
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
        self._intents.clear()
        found = appendlog.read_lines(self.path)
        if found.torn_tail:
            appendlog.repair_tail(self.path)
            self.notes.append(f"{self.path}: cut a torn last line (an interrupted append)")
        if found.bad_lines:
            aside = self._set_aside()
            self.notes.append(
                f"{self.path}: line {found.bad_lines[0]} is damaged; set aside as {aside.name}, "
                "progress is rebuilt from the board and the service"
            )
            return
        for rec in found.records:
            step, event = rec.get("step"), rec.get("event")
            if step not in STEP_IDS:
                continue
            data = rec.get("data")
            if event == "done":
                self._done[step] = dict(data) if isinstance(data, dict) else {}
            elif event == "start":
                self._started[step] = self._started.get(step, 0) + 1
            elif event == "intent":
                self._intents[step] = dict(data) if isinstance(data, dict) else {}

    def _set_aside(self) -> Path:
        n = 1
        while (aside := self.path.with_name(f"{self.path.name}.damaged-{n}")).exists():
            n += 1
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise appendlog.disk_error(self.path, exc, "set aside") from None
        return aside

    def _append(self, rec: dict[str, Any]) -> None:
        appendlog.append_line(self.path, rec)

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
        self._started[step_id] = self._started.get(step_id, 0) + 1
        self._append({"ts": time.time(), "step": step_id, "event": "start"})

    def intent(self, step_id: str, data: dict[str, Any]) -> None:
        """Record, before the board acts, what a step is about to do (the keygen intent)."""
        step_by_id(step_id)
        self._append({"ts": time.time(), "step": step_id, "event": "intent", "data": data})
        self._intents[step_id] = dict(data)

    def intent_of(self, step_id: str) -> dict[str, Any] | None:
        return self._intents.get(step_id)

    def done(self, step_id: str, data: dict[str, Any] | None = None) -> None:
        step_by_id(step_id)
        payload = dict(data or {})
        self._append({"ts": time.time(), "step": step_id, "event": "done", "data": payload})
        self._done[step_id] = payload

    def forget(self, step_id: str) -> None:
        """Treat ``step_id`` as unfinished in this run (its record did not hold up against the board)."""
        self._done.pop(step_id, None)

    def artifact(self, name: str) -> Path:
        """Path of an artifact file in this board's journal folder."""
        return self.dir / _safe_name(name)

    def save_artifact(self, name: str, data: bytes) -> Path:
        """Atomically store an artifact (before the ``done`` line that relies on it)."""
        path = self.artifact(name)
        atomic_write(path, data)
        return path

    def read_artifact(self, name: str) -> bytes | None:
        """An artifact's bytes, or None when it is missing or unreadable."""
        try:
            return self.artifact(name).read_bytes()
        except OSError:
            return None

    def attempt(self, step_id: str) -> int:
        """How many times ``step_id`` has been started (for fresh idempotency keys per attempt)."""
        return self._started.get(step_id, 0)
