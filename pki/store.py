"""The CA's record: boards, every issued certificate (serial unique), revocations and CRLs.

Why a store in the PKI layer: "no duplicate serials, no lost records" is a CA property, so the
uniqueness constraints live next to the CA, not in the service. SQLAlchemy 2 models; SQLite
file by default, PostgreSQL (or anything SQLAlchemy speaks) by URL. Tables are prefixed
``pki_``; their Alembic migrations live with the service's (``pki/service/migrations``), and
``create_schema`` exists for tests and tools that run without Alembic.

UIDs are stored as 24 lower-case hex digits; serials as lower-case hex without leading zeros
(certificate serials exceed 64-bit integers).

Writes happen inside the caller's ``Session`` (the caller commits); ``record_certificate``
flushes so a duplicate serial fails at once with ``StoreError``.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import (
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from pki.ca.crl import RevokedEntry
from pki.ca.profiles import check_uid
from pki.errors import StoreError

#: Default database: a SQLite file in the working directory (override with NUSEC_PKI_DB_URL).
DEFAULT_DB_URL = "sqlite:///nusec-pki.db"
DB_URL_ENV = "NUSEC_PKI_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class PkiBase(DeclarativeBase):
    """Metadata of the PKI tables (``PkiBase.metadata`` for Alembic's target_metadata)."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Board(PkiBase):
    """A registered board, by UID. ``state`` is free text owned by the caller (the service)."""

    __tablename__ = "pki_board"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(24), unique=True)
    state: Mapped[str] = mapped_column(String(32), default="registered")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=_utcnow, onupdate=_utcnow
    )


class IssuedCertificate(PkiBase):
    """Every certificate the CA signed (the DER is kept)."""

    __tablename__ = "pki_certificate"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(42), unique=True)
    profile: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(1024))
    issuer: Mapped[str] = mapped_column(String(1024))
    board_id: Mapped[int | None] = mapped_column(ForeignKey("pki_board.id"), nullable=True, index=True)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)

    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


class Revocation(PkiBase):
    """A revoked certificate (at most one revocation per certificate)."""

    __tablename__ = "pki_revocation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("pki_certificate.id"), unique=True)
    serial: Mapped[str] = mapped_column(String(42), unique=True)
    revoked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class CrlRecord(PkiBase):
    """Every CRL issued; ``crl_number`` is unique and increasing."""

    __tablename__ = "pki_crl"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    crl_number: Mapped[int] = mapped_column(Integer, unique=True)
    this_update: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    der: Mapped[bytes] = mapped_column(LargeBinary)


# --- engine -------------------------------------------------------------------------------------


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """Engine for ``url`` (default ``$NUSEC_PKI_DB_URL`` or a SQLite file ``nusec-pki.db``).

    SQLite connections get WAL, a busy timeout (concurrent writers queue instead of failing) and
    foreign keys on."""
    target = url or os.environ.get(DB_URL_ENV) or DEFAULT_DB_URL
    if target.startswith("sqlite"):
        engine = create_engine(
            target,
            echo=echo,
            hide_parameters=True,  # errors and logs never carry bound values (CSR fields, details)
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if ":memory:" not in target and target not in ("sqlite://", "sqlite:///"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # Each request may hold a board lock connection and a write session at once (pki.service.locks).
    return create_engine(
        target, echo=echo, hide_parameters=True, pool_pre_ping=True, pool_size=20, max_overflow=20
    )


def create_schema(engine: Engine) -> None:
    """Create the ``pki_*`` tables if missing (tests/tools; the service uses Alembic)."""
    PkiBase.metadata.create_all(engine)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """Session factory (objects stay readable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


# --- operations ---------------------------------------------------------------------------------


def serial_hex(serial: int) -> str:
    """Canonical text of a certificate serial: lower-case hex, no leading zeros."""
    return format(serial, "x")


def _uid_text(uid: bytes) -> str:
    return check_uid(uid).hex()


def register_board(session: Session, uid: bytes, state: str = "registered") -> Board:
    """The board row for ``uid``, created if new (idempotent; concurrent creators race safely)."""
    text = _uid_text(uid)
    existing = session.scalar(select(Board).where(Board.uid == text))
    if existing is not None:
        return existing
    board = Board(uid=text, state=state)
    try:
        with session.begin_nested():
            session.add(board)
    except IntegrityError:
        found = session.scalar(select(Board).where(Board.uid == text))
        if found is None:
            raise StoreError(f"could not register board {text}") from None
        return found
    return board


def get_board(session: Session, uid: bytes) -> Board | None:
    """The board row for ``uid``, or None."""
    return session.scalar(select(Board).where(Board.uid == _uid_text(uid)))


def record_certificate(
    session: Session, cert: x509.Certificate, profile: str, board_uid: bytes | None = None
) -> IssuedCertificate:
    """Record an issued certificate; ``StoreError`` on a duplicate serial or unknown board."""
    board_id = None
    if board_uid is not None:
        board = get_board(session, board_uid)
        if board is None:
            raise StoreError(f"board {_uid_text(board_uid)} is not registered")
        board_id = board.id
    row = IssuedCertificate(
        serial=serial_hex(cert.serial_number),
        profile=profile,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        board_id=board_id,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        der=cert.public_bytes(serialization.Encoding.DER),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise StoreError(f"certificate serial {row.serial} is already recorded") from None
    return row


def find_certificate(session: Session, serial: int) -> IssuedCertificate | None:
    """The recorded certificate with ``serial``, or None."""
    return session.scalar(select(IssuedCertificate).where(IssuedCertificate.serial == serial_hex(serial)))


def live_certificates_with_cn(
    session: Session, profile: str, common_name: str, at: dt.datetime | None = None
) -> list[IssuedCertificate]:
    """Recorded certificates of ``profile`` whose subject CN is ``common_name``, neither revoked
    nor expired at ``at`` (default now): what makes an operator name ambiguous in the audit."""
    from cryptography.x509.oid import NameOID

    when = at or _utcnow()
    revoked = select(Revocation.certificate_id)
    found: list[IssuedCertificate] = []
    for row in session.scalars(
        select(IssuedCertificate).where(
            IssuedCertificate.profile == profile, IssuedCertificate.id.not_in(revoked)
        )
    ):
        not_after = row.not_after if row.not_after.tzinfo else row.not_after.replace(tzinfo=dt.UTC)
        if not_after <= when:
            continue
        names = row.certificate().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if any(attr.value == common_name for attr in names):
            found.append(row)
    return found


def certificates_for_board(session: Session, uid: bytes) -> list[IssuedCertificate]:
    """All certificates recorded for a board, oldest first."""
    board = get_board(session, uid)
    if board is None:
        return []
    return list(
        session.scalars(
            select(IssuedCertificate)
            .where(IssuedCertificate.board_id == board.id)
            .order_by(IssuedCertificate.id)
        )
    )


def revoke_certificate(
    session: Session,
    serial: int,
    reason: x509.ReasonFlags | None = None,
    revoked_at: dt.datetime | None = None,
) -> Revocation:
    """Mark a recorded certificate revoked (idempotent: returns the existing revocation)."""
    cert = find_certificate(session, serial)
    if cert is None:
        raise StoreError(f"no certificate with serial {serial_hex(serial)} is recorded")
    existing = session.scalar(select(Revocation).where(Revocation.certificate_id == cert.id))
    if existing is not None:
        return existing
    row = Revocation(
        certificate_id=cert.id,
        serial=cert.serial,
        revoked_at=(revoked_at or _utcnow()).astimezone(dt.UTC),
        reason=reason.value if reason is not None else None,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise StoreError(f"certificate {cert.serial} was revoked concurrently") from None
    return row


def find_revocation(session: Session, serial: int) -> Revocation | None:
    """The revocation of the certificate with ``serial``, or None.

    One lookup on the unique (hence indexed) ``serial`` column: cheap enough for the service to
    ask on every mutual-TLS request."""
    return session.scalar(select(Revocation).where(Revocation.serial == serial_hex(serial)))


def revoked_entries(session: Session) -> list[RevokedEntry]:
    """Every revocation, as input for ``pki.ca.issue_crl``."""
    out: list[RevokedEntry] = []
    for row in session.scalars(select(Revocation).order_by(Revocation.id)):
        revoked_at = row.revoked_at if row.revoked_at.tzinfo else row.revoked_at.replace(tzinfo=dt.UTC)
        out.append(
            RevokedEntry(
                serial=int(row.serial, 16),
                revoked_at=revoked_at,
                reason=x509.ReasonFlags(row.reason) if row.reason else None,
            )
        )
    return out


def next_crl_number(session: Session) -> int:
    """One more than the highest CRL number recorded (1 for the first CRL)."""
    current = session.scalar(select(func.max(CrlRecord.crl_number)))
    return int(current or 0) + 1


def record_crl(session: Session, crl_obj: x509.CertificateRevocationList) -> CrlRecord:
    """Record an issued CRL; ``StoreError`` if its number was already used."""
    number_ext = crl_obj.extensions.get_extension_for_class(x509.CRLNumber).value
    row = CrlRecord(
        crl_number=number_ext.crl_number,
        this_update=crl_obj.last_update_utc,
        der=crl_obj.public_bytes(serialization.Encoding.DER),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise StoreError(f"CRL number {number_ext.crl_number} is already used") from None
    return row
