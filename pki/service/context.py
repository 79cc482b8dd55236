"""The live objects one service instance works with: config, HSM backend, ICA issuer, database.

Built once at start-up (``open_context``) and handed to the app factory; routes never open
their own HSM sessions or engines. ``ServiceContext.write`` is how every state-changing action
lands in the hash-chained audit log, in the same transaction as its effect, under the audit
append lock (``pki.service.locks``), with a signed checkpoint every ``audit_checkpoint_rows``
rows (``pki.service.checkpoints``). ``record_refusal`` is the one way a refusal reaches the log
(rate-limited per client certificate, ``pki.service.refusals``). ``start``/``close`` run the
audit heartbeat: a start checkpoint, then one every ``audit_checkpoint_interval`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pki.ca import Issuer
from pki.hsm import KeyBackend
from pki.service import audit, checkpoints
from pki.service.auth import Principal
from pki.service.config import ServiceConfig
from pki.service.db import Store
from pki.service.locks import BoardLocks
from pki.service.models import AuditCheckpoint
from pki.service.refusals import RefusalLimiter, Suppressed, mark_recorded

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    """Shared state of one running service (thread-safe: the backend is, sessions are per call)."""

    config: ServiceConfig
    backend: KeyBackend
    issuer: Issuer
    root_cert: x509.Certificate
    engine: Engine
    sessions: sessionmaker[Session]
    store: Store = field(init=False)
    board_locks: BoardLocks = field(init=False)
    refusals: RefusalLimiter = field(init=False)
    head_memory: checkpoints.HeadMemory = field(default_factory=checkpoints.HeadMemory)
    _stop: threading.Event = field(default_factory=threading.Event)
    _heartbeat: threading.Thread | None = None
    nubl2: bytes | None = None  # the signed NuBL2, verified with the HSM's NuBL2 key at start-up

    def __post_init__(self) -> None:
        self.store = Store(self.engine)
        self.board_locks = self.store.board_locks
        self.refusals = RefusalLimiter(self.config.refusals_per_minute)

    @property
    def ica_cert(self) -> x509.Certificate:
        return self.issuer.certificate

    def sign_digest(self, digest: bytes) -> bytes:
        """Raw r||s by the ICA key in the HSM (audit checkpoints)."""
        return self.backend.sign_digest_raw(self.issuer.key_label, digest)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that may append to the audit chain; commits on success.

        Holds the audit append lock for the whole transaction so rows are chained in commit order,
        and adds a signed checkpoint when enough rows have accumulated. Keep HSM work outside it
        (the checkpoint signature, every ``audit_checkpoint_rows`` rows, is the exception).
        """
        head: list[tuple[int, str]] = []

        def before_commit(session: Session) -> None:
            if checkpoints.due(session, self.config.audit_checkpoint_rows):
                self._checkpoint(session, "rows")
            head.append(checkpoints.head(session))

        with self.store.write(before_commit) as session:
            yield session
        self.head_memory.remember(*head[0])

    def _checkpoint(self, session: Session, kind: str) -> AuditCheckpoint:
        return checkpoints.make(
            session, self.sign_digest, kind, self.config.audit_checkpoint_interval, self.head_memory
        )

    def checkpoint(self, kind: str) -> dict[str, Any]:
        """Sign the current head now (its own transaction); ``AuditTamperedError`` if cut."""
        with self.write() as session:
            cp = self._checkpoint(session, kind)
            return checkpoints.to_json(cp)

    # --- refusals ---------------------------------------------------------------------------------

    def record_refusal(
        self, who: Principal, action: str, subject: str, reason: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Audit a refused action (its own transaction: nothing else of the request commits)."""
        self.audit_refusal(
            who.name, who.cert_sha256, who.role.value, action, subject, {"reason": reason, **(detail or {})}
        )

    def audit_refusal(
        self, actor: str, actor_cert: str, role: str, action: str, subject: str, detail: dict[str, Any]
    ) -> None:
        """One bounded ``refused`` row, within the client's budget; beyond it, only counted."""
        mark_recorded(str(detail.get("problem", "refused")))
        own_row, ended = self.refusals.admit(actor_cert, actor, role)
        if not own_row and ended is None:
            return
        with self.write() as session:
            if ended is not None:
                self._suppressed_row(session, ended)
            if own_row:
                audit.append(
                    session,
                    actor=actor,
                    actor_cert=actor_cert,
                    role=role,
                    action=action,
                    subject=subject,
                    outcome="refused",
                    detail=detail,
                )

    def _suppressed_row(self, session: Session, ended: Suppressed) -> None:
        audit.append(
            session,
            actor=ended.actor,
            actor_cert=ended.actor_cert,
            role=ended.role,
            action="refusals-suppressed",
            subject="-",
            outcome="refused",
            detail={"count": ended.count, "window_s": 60, "limit": self.config.refusals_per_minute},
        )

    def flush_refusals(self, everything: bool = False) -> None:
        """Write the counts of rate-limit windows that have ended (all of them, at shutdown)."""
        ended = self.refusals.ended(everything)
        if ended:
            with self.write() as session:
                for item in ended:
                    self._suppressed_row(session, item)

    # --- heartbeat --------------------------------------------------------------------------------

    def start(self) -> None:
        """Record the start (row + checkpoint) and run the checkpoint heartbeat in a thread."""
        with self.write() as session:
            audit.append(
                session,
                actor="nusec-serve",
                actor_cert="",
                role="service",
                action="service-start",
                subject="-",
            )
            session.flush()
            self._checkpoint(session, "start")
        self._heartbeat = threading.Thread(target=self._beat, name="nusec-audit-heartbeat", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.config.audit_checkpoint_interval):
            try:
                self.flush_refusals()
                self.checkpoint("interval")
            except checkpoints.AuditTamperedError as exc:
                log.error("audit checkpoint refused: %s", exc)
            except Exception as exc:  # keep beating: a database hiccup must not end the heartbeat
                log.error("audit checkpoint failed: %s", type(exc).__name__)

    def close(self) -> None:
        """Stop the heartbeat, then release the HSM session and the engine."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
            self._heartbeat = None
        try:
            self.flush_refusals(everything=True)
        except Exception as exc:
            log.error("could not write the last refusal counts: %s", type(exc).__name__)
        self.backend.close()
        self.engine.dispose()
