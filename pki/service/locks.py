"""Per-board locks and the audit append lock, in the database where the database can hold them.

Why: two requests for the same board must never interleave their HSM + store steps (two
concurrent "make the secure-boot key" calls would both find no key and both make one), and two
audit appends must never extend the same head. With several ``nusec serve`` processes on one
PostgreSQL database, only the database can serialise them, so on PostgreSQL both locks are
advisory locks: a session lock on a connection of its own for a board (held across the HSM
work, which runs outside any transaction), a transaction lock for the audit append (released by
the commit). SQLite serialises writers itself but has no such locks, so there the locks are
process-local: run one service process per SQLite file.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

#: Advisory lock id of the audit chain's head (board locks hash their UID into another range).
AUDIT_LOCK_ID = int.from_bytes(hashlib.sha256(b"nusec-audit-head").digest()[:8], "big", signed=True)


def advisory_id(namespace: str, key: str) -> int:
    """A signed 64-bit advisory lock id for ``key`` (SHA-256, so ids spread evenly)."""
    return int.from_bytes(hashlib.sha256(f"{namespace}\0{key}".encode()).digest()[:8], "big", signed=True)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class KeyedLocks:
    """A lock per key, made on first use and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class BoardLocks:
    """``hold(uid)``: the board's lock, across processes on PostgreSQL, in-process on SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.local = KeyedLocks()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self.local.hold(key):  # threads of this process queue here, not on a connection each
            if not is_postgres(self.engine):
                yield
                return
            lock_id = advisory_id("board", key.lower())
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                    conn.commit()


_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(engine: Engine) -> threading.Lock:
    """One lock per database in this process, whichever engine or store reaches it."""
    name = engine.url.render_as_string(hide_password=False)
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(name, threading.Lock())


class AppendLock:
    """The audit append lock, held for one write transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.local = _process_lock(engine)

    @contextmanager
    def held(self, session: Session) -> Iterator[None]:
        if is_postgres(self.engine):
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": AUDIT_LOCK_ID})
            yield
            return
        with self.local:
            yield
