"""What every /v1 router shares: the caller and context dependencies, path parameters, and the
board helpers (load, state check, step history, audited refusals, per-board lock).

Handlers are plain module-level functions; they get the ``ServiceContext`` through the ``Ctx``
dependency (``app.state.ctx``), so a router module holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Header, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from pki.ca import Role
from pki.errors import PkiError
from pki.service.auth import Principal, check_role, principal_from_scope
from pki.service.context import ServiceContext
from pki.service.models import BoardProgress, BoardStep
from pki.service.problems import Problem, from_pki_error, problem_responses
from pki.service.schemas import STATE_ORDER, BoardState, BoardStatus, StepRecord

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


def state_index(state: str) -> int:
    return STATE_ORDER.index(BoardState(state))


def advance(board: BoardProgress, state: BoardState) -> None:
    if state_index(board.state) < STATE_ORDER.index(state):
        board.state = state.value
    board.updated_at = now()


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


def load_board(session: Session, uid: str) -> BoardProgress:
    board = session.get(BoardProgress, uid)
    if board is None:
        raise Problem(404, "board-not-registered", "Board not registered", f"board {uid} is not registered")
    return board


def require_state(board: BoardProgress, needed: BoardState, action: str) -> None:
    if state_index(board.state) < STATE_ORDER.index(needed):
        raise Problem(
            409,
            "wrong-state",
            "Board not ready",
            f"{action} needs state {needed.value}; board {board.uid} is {board.state}",
        )


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
        steps=[StepRecord(step=s.step, actor=s.actor, at=iso(s.at), detail=s.detail) for s in steps],
    )
