"""Refusals in the audit log, bounded: one row per refusal up to ``per_minute`` per client
certificate, then one summary row counting the rest.

Why a limit: a revoked or misbehaving client that retries in a loop would otherwise write rows
as fast as it can send requests (defect 7 saw ~70 rows/s), growing the database and drowning
the real events. The count is never lost: the suppressed refusals of a window are written as one
``refusals-suppressed`` row when the client's next refusal starts a new window, or by the
service's heartbeat (``ServiceContext.flush_refusals``) once the window has ended.

``recorded`` marks the request being served as audited (a ``ContextVar`` holding a list, shared
with the worker thread a handler runs in), so ``pki.service.requests`` audits only the refusals
no handler audited itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

WINDOW_S = 60.0
MAX_TRACKED = 4096

#: Set per request by ``pki.service.requests``; a refusal audited during it appends to the list.
recorded: ContextVar[list[str] | None] = ContextVar("refusal_recorded", default=None)


def mark_recorded(slug: str) -> None:
    marks = recorded.get()
    if marks is not None:
        marks.append(slug)


@dataclass
class _Window:
    start: float
    count: int
    suppressed: int
    actor: str
    role: str


@dataclass(frozen=True)
class Suppressed:
    """Refusals of one client certificate not written one by one in a window that has ended."""

    actor_cert: str
    actor: str
    role: str
    count: int


class RefusalLimiter:
    """Per-certificate refusal budget per ``WINDOW_S`` (thread-safe)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def admit(self, actor_cert: str, actor: str, role: str) -> tuple[bool, Suppressed | None]:
        """(write this refusal's own row?, the ended window's suppressed count to write first)."""
        now = self.clock()
        with self._lock:
            ended: Suppressed | None = None
            window = self._windows.get(actor_cert)
            if window is not None and now - window.start >= WINDOW_S:
                if window.suppressed:
                    ended = Suppressed(actor_cert, window.actor, window.role, window.suppressed)
                window = None
            if window is None:
                if len(self._windows) >= MAX_TRACKED:
                    self._drop_quiet()
                window = _Window(now, 0, 0, actor, role)
                self._windows[actor_cert] = window
            window.count += 1
            if window.count <= self.per_minute:
                return True, ended
            window.suppressed += 1
            return False, ended

    def ended(self, everything: bool = False) -> list[Suppressed]:
        """Suppressed counts of windows that have ended (all windows with ``everything``, at
        shutdown), and forget those windows."""
        now = self.clock()
        out: list[Suppressed] = []
        with self._lock:
            for key, window in list(self._windows.items()):
                if everything or now - window.start >= WINDOW_S:
                    if window.suppressed:
                        out.append(Suppressed(key, window.actor, window.role, window.suppressed))
                    del self._windows[key]
        return out

    def _drop_quiet(self) -> None:
        """Forget windows without suppressed refusals (the table's size bound)."""
        for key, window in list(self._windows.items()):
            if not window.suppressed:
                del self._windows[key]
