"""The service's own tables (board progress, idempotency, audit chain, key agreements).

The PKI layer owns boards' certificates and revocations (``pki.store``); these tables hold what
only the REST service needs. Alembic migrations in ``pki/service/migrations`` create them; this
module is the ORM face the routes use.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class ServiceBase(DeclarativeBase):
    """Metadata of the service tables only (kept apart from ``pki.store``'s)."""


class BoardProgress(ServiceBase):
    """One row per registered board: its state in the provisioning state machine."""

    __tablename__ = "svc_board"
    __table_args__ = (
        UniqueConstraint("cert_serial", name="uq_svc_board_cert_serial"),
        UniqueConstraint("sb_batch_ref", name="uq_svc_board_sb_batch_ref"),
    )

    uid: Mapped[str] = mapped_column(String(24), primary_key=True)  # 12-byte UID, lower-case hex
    state: Mapped[str] = mapped_column(String(32))
    registered_by: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    csr_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cert_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cert_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sb_key_label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sb_public_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # "batch:<batch id>:<index>" when the key was imported from a bulk OTP batch (one image, one board)
    sb_batch_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    aes_key_label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # wrong key confirmations since the last admin reset; at the limit key agreement is locked
    ka_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ka_locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class BoardGrant(ServiceBase):
    """An operator other than the owner allowed to act on a board (granted by an admin)."""

    __tablename__ = "svc_board_grant"

    uid: Mapped[str] = mapped_column(String(24), ForeignKey("svc_board.uid"), primary_key=True)
    operator: Mapped[str] = mapped_column(String(200), primary_key=True)  # certificate CN
    granted_by: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BoardStep(ServiceBase):
    """Every step reached or reported for a board, in order (the board's history)."""

    __tablename__ = "svc_board_step"
    __table_args__ = (Index("ix_svc_board_step_quota", "actor", "step", "at"),)  # per-operator quotas

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(24), ForeignKey("svc_board.uid"), index=True)
    step: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[str] = mapped_column(Text, default="")


class IdempotencyRecord(ServiceBase):
    """The stored answer to a state-changing request, replayed when its Idempotency-Key returns."""

    __tablename__ = "svc_idempotency"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256(client, key)
    request_sha256: Mapped[str] = mapped_column(String(64))  # method, path, query, type and body
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None while in flight
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    headers: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [[name, value], ...]
    owner: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the worker's claim token
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch s, while in flight
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)  # epoch s


class AuditRow(ServiceBase):
    """One audited action; ``row_hash`` covers the row and ``prev_hash`` so edits break the chain."""

    __tablename__ = "svc_audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, hashed as text
    actor: Mapped[str] = mapped_column(String(200))  # client certificate CN
    # SHA-256 of the client certificate (DER); "" on rows written before it was recorded
    actor_cert: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditCheckpoint(ServiceBase):
    """A signed statement "the chain had ``seq`` rows ending in ``head_hash`` at ``at``".

    ``n`` counts checkpoints without gaps; ``signature`` is the ICA key's raw r||s over
    ``pki.service.checkpoints.message``; ``kind`` says why it was made (rows, interval, start,
    request)."""

    __tablename__ = "svc_audit_checkpoint"

    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    interval: Mapped[float] = mapped_column(Float)  # seconds promised until the next checkpoint
    signature: Mapped[str] = mapped_column(String(128))


class KeyAgreement(ServiceBase):
    """One authenticated ECDH exchange (docs/key-agreement.md) awaiting or past confirmation."""

    __tablename__ = "svc_key_agreement"
    __table_args__ = (UniqueConstraint("aes_key_label"), Index("ix_svc_ka_uid", "uid"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    uid: Mapped[str] = mapped_column(String(24), ForeignKey("svc_board.uid"))
    board_eph: Mapped[bytes] = mapped_column(LargeBinary)
    srv_eph: Mapped[bytes] = mapped_column(LargeBinary)
    transcript_hash: Mapped[bytes] = mapped_column(LargeBinary)  # T = H(uid || board_eph || srv_eph)
    aes_key_label: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # pending | confirmed | failed | superseded
    opened_by: Mapped[str | None] = mapped_column(String(200), nullable=True)  # CN; only it may confirm
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FirmwareSigning(ServiceBase):
    """A record of each image signed for a board (digests only; the image goes back to the caller)."""

    __tablename__ = "svc_firmware_signing"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(24), ForeignKey("svc_board.uid"), index=True)
    input_sha256: Mapped[str] = mapped_column(String(64))
    image_sha256: Mapped[str] = mapped_column(String(64))  # the MCUboot SHA256 TLV value
    size: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(40))
    signed_by: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
