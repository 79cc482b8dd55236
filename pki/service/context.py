"""The live objects one service instance works with: config, HSM backend, ICA issuer, database.

Built once at start-up (``open_context``) and handed to the app factory; routes never open
their own HSM sessions or engines. ``ServiceContext.audited`` is how every state-changing
action lands in the hash-chained audit log, in the same transaction as its effect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pki.ca import Issuer
from pki.hsm import KeyBackend
from pki.service import audit
from pki.service.auth import Principal
from pki.service.config import ServiceConfig
from pki.service.locks import KeyedLocks


@dataclass
class ServiceContext:
    """Shared state of one running service (thread-safe: the backend is, sessions are per call)."""

    config: ServiceConfig
    backend: KeyBackend
    issuer: Issuer
    root_cert: x509.Certificate
    engine: Engine
    sessions: sessionmaker[Session]
    board_locks: KeyedLocks = field(default_factory=KeyedLocks)

    @property
    def ica_cert(self) -> x509.Certificate:
        return self.issuer.certificate

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that may append to the audit chain; commits on success.

        Holds the audit append lock for the whole transaction so rows are chained in commit order.
        Keep HSM work outside it.
        """
        with audit.append_lock(), self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def record_refusal(
        self, who: Principal, action: str, subject: str, reason: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Audit a refused action (its own transaction: nothing else of the request commits)."""
        with self.write() as session:
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action=action,
                subject=subject,
                outcome="refused",
                detail={"reason": reason, **(detail or {})},
            )
