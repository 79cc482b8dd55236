"""What every /v1 router shares: the caller and context dependencies, path parameters, and the
board helpers (load, state check, step history, audited refusals, per-board lock).

Handlers are plain module-level functions; they get the ``ServiceContext`` through the ``Ctx``
dependency (``app.state.ctx``), so a router module holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Header, Path, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pki import store
from pki.ca import Role
from pki.errors import PkiError
from pki.service.auth import Principal, check_role, principal_from_scope
from pki.service.board_states import OK, READS, REFUSALS, Op, decide, moved
from pki.service.context import ServiceContext
from pki.service.models import BoardGrant, BoardProgress, BoardStep
from pki.service.problems import Problem, from_pki_error, problem_responses
from pki.service.schemas import BoardState, BoardStatus, StepRecord

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe key: the same key with the same request replays the first answer",
        pattern=r"^[\x21-\x7e]{1,255}$",
    ),
]
Uid = Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{24}$", description="board UID, 24 hex digits")]
SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="key agreement session id")]


def resource_router() -> APIRouter:
    """A resource's router: every path under /v1, every route may answer 400 (unparseable body)."""
    return APIRouter(prefix="/v1", responses=problem_responses(400))


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def parse_uid(text: str) -> tuple[str, bytes]:
    """Canonical (upper-case hex, bytes) form of a UID from the path; 422 problem if malformed."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 12:
        raise Problem(422, "bad-uid", "Bad board UID", "board UID must be 24 hex digits (12 bytes)")
    return raw.hex().upper(), raw


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def add_step(session: Session, uid: str, step: str, who: Principal, detail: str = "") -> None:
    session.add(BoardStep(uid=uid, step=step, actor=who.name, at=now(), detail=detail))


def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def _caller(request: Request) -> Principal:
    return principal_from_scope(request.scope, get_ctx(request).config.insecure_dev)


def _operator(who: Annotated[Principal, Depends(_caller)]) -> Principal:
    check_role(who, (Role.OPERATOR, Role.ADMIN))
    return who


def _admin(request: Request, who: Annotated[Principal, Depends(_caller)]) -> Principal:
    try:
        check_role(who, (Role.ADMIN,))
    except Problem as problem:
        get_ctx(request).record_refusal(who, f"{request.method} {request.url.path}", "-", problem.detail)
        raise
    return who


Operator = Annotated[Principal, Depends(_operator)]
Admin = Annotated[Principal, Depends(_admin)]


def board_for(ctx: ServiceContext, session: Session, who: Principal, uid: str, op: Op) -> BoardProgress:
    """The board ``op`` acts on, once every rule allows it: it exists (404), ``who`` owns it, is an
    admin or was granted it (403), its certificate is not revoked (409, changes only), and the
    state table allows ``op`` in its state (``pki.service.board_states``)."""
    board = owned_board(session, who, uid, changes=op not in READS)
    slug = decide(op, board.state)
    if slug != OK:
        refusal = REFUSALS[slug]
        hint = f": {refusal.hint}" if refusal.hint else ""
        raise Problem(
            refusal.status, slug, refusal.title, f"{op.value} is refused: board {uid} is {board.state}{hint}"
        )
    return board


def owned_board(session: Session, who: Principal, uid: str, *, changes: bool) -> BoardProgress:
    """The board, if ``who`` may act on it and (for a change) its certificate is not revoked."""
    board = load_board(session, uid)
    if not may_act_on(session, board, who):
        raise Problem(
            403,
            "not-board-owner",
            "Not your board",
            f"board {uid} belongs to another operator; an admin may grant it to you",
        )
    if changes and certificate_revoked(session, board):
        raise Problem(
            409,
            "board-certificate-revoked",
            "Board certificate revoked",
            f"the certificate of board {uid} is revoked: the board takes no further operation",
        )
    return board


def may_act_on(session: Session, board: BoardProgress, who: Principal) -> bool:
    if who.role is Role.ADMIN or board.registered_by == who.name:
        return True
    return session.get(BoardGrant, (board.uid, who.name)) is not None


def certificate_revoked(session: Session, board: BoardProgress) -> bool:
    """The board's current certificate is revoked (for any reason, by the service or ``nusec pki``)."""
    return (
        board.cert_serial is not None
        and store.find_revocation(session, int(board.cert_serial, 16)) is not None
    )


def move(board: BoardProgress, op: Op) -> None:
    """Move the board forward after ``op`` succeeded (never backwards)."""
    board.state = moved(board.state, op).value
    board.updated_at = now()


#: Board steps that count against an operator's quotas (``ServiceConfig.max_registrations``,
#: ``max_hsm_keys``): the step rows are written in the same transaction as the effect.
QUOTA_STEPS = {
    "registrations": (BoardState.REGISTERED.value,),
    "HSM keys": (BoardState.SECURE_BOOT_KEY.value, "key_agreement_started"),
}


def check_quota(ctx: ServiceContext, session: Session, who: Principal, kind: str) -> None:
    """429 once ``who`` used its quota of ``kind`` within the window."""
    limit = ctx.config.max_registrations if kind == "registrations" else ctx.config.max_hsm_keys
    since = now() - timedelta(seconds=ctx.config.quota_window)
    used = session.scalar(
        select(func.count())
        .select_from(BoardStep)
        .where(BoardStep.actor == who.name, BoardStep.step.in_(QUOTA_STEPS[kind]), BoardStep.at > since)
    )
    if (used or 0) >= limit:
        raise Problem(
            429,
            "quota-exceeded",
            "Quota exceeded",
            f"operator {who.name!r} used its {limit} {kind} per {ctx.config.quota_window:g} s",
            retry_after=int(ctx.config.quota_window),
        )


def load_board(session: Session, uid: str) -> BoardProgress:
    board = session.get(BoardProgress, uid)
    if board is None:
        raise Problem(404, "board-not-registered", "Board not registered", f"board {uid} is not registered")
    return board


def refused(ctx: ServiceContext, who: Principal, action: str, uid: str, exc: Problem | PkiError) -> Problem:
    """Audit a refused action; return the problem to raise."""
    problem = exc if isinstance(exc, Problem) else from_pki_error(exc)
    ctx.record_refusal(who, action, uid, problem.detail, {"status": problem.status})
    return problem


@contextmanager
def refusals_audited(ctx: ServiceContext, who: Principal, action: str, uid: str) -> Iterator[None]:
    """A refusal inside (``Problem`` or ``PkiError``) is audited and raised as a ``Problem``."""
    try:
        yield
    except (Problem, PkiError) as exc:
        raise refused(ctx, who, action, uid, exc) from None


@contextmanager
def board_locked(ctx: ServiceContext, who: Principal, action: str, uid: str) -> Iterator[None]:
    """Hold the board's lock for ``action``, with refusals audited."""
    with refusals_audited(ctx, who, action, uid), ctx.board_locks.hold(uid):
        yield


def status_of(session: Session, board: BoardProgress) -> BoardStatus:
    steps = session.execute(
        select(BoardStep).where(BoardStep.uid == board.uid).order_by(BoardStep.id)
    ).scalars()
    return BoardStatus(
        uid=board.uid,
        state=BoardState(board.state),
        registered_at=iso(board.registered_at),
        updated_at=iso(board.updated_at),
        certificate_serial=board.cert_serial,
        secure_boot_key=board.sb_public_der is not None,
        owner=board.registered_by,
        certificate_revoked=certificate_revoked(session, board),
        key_agreement_locked=bool(board.ka_locked),
        steps=[StepRecord(step=s.step, actor=s.actor, at=iso(s.at), detail=s.detail) for s in steps],
    )
