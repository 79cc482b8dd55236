"""/v1/boards: register a board, read its state, record the steps only the desktop can see."""

from __future__ import annotations

from fastapi import Response

from pki import store
from pki.service import audit
from pki.service.models import BoardProgress
from pki.service.problems import problem_responses
from pki.service.routes.common import (
    Ctx,
    IdempotencyKey,
    Operator,
    Uid,
    add_step,
    load_board,
    now,
    parse_uid,
    resource_router,
    status_of,
)
from pki.service.schemas import BoardState, BoardStatus, RegisterBoard, ReportStep

router = resource_router()


@router.post(
    "/boards",
    response_model=BoardStatus,
    status_code=201,
    responses={
        200: {"description": "Already registered", "model": BoardStatus},
        **problem_responses(401, 403, 409, 422),
    },
)
def register_board(
    body: RegisterBoard, ctx: Ctx, who: Operator, response: Response, _key: IdempotencyKey = None
) -> BoardStatus:
    """Register a board by its 12-byte UID. Registering it again returns its status (200)."""
    uid, _ = parse_uid(body.uid)
    with ctx.board_locks.hold(uid), ctx.write() as session:
        board = session.get(BoardProgress, uid)
        if board is not None:
            response.status_code = 200
            return status_of(session, board)
        at = now()
        board = BoardProgress(
            uid=uid,
            state=BoardState.REGISTERED.value,
            registered_by=who.name,
            registered_at=at,
            updated_at=at,
        )
        session.add(board)
        store.register_board(session, bytes.fromhex(uid))
        session.flush()
        add_step(session, uid, BoardState.REGISTERED.value, who)
        audit.append(session, actor=who.name, role=who.role.value, action="register", subject=uid)
        session.flush()
        return status_of(session, board)


@router.get("/boards/{uid}", response_model=BoardStatus, responses=problem_responses(401, 403, 404, 422))
def board_status(uid: Uid, ctx: Ctx, who: Operator) -> BoardStatus:
    """The board's provisioning state and the history of its steps."""
    uid, _ = parse_uid(uid)
    with ctx.sessions() as session:
        return status_of(session, load_board(session, uid))


@router.post(
    "/boards/{uid}/steps",
    response_model=BoardStatus,
    responses=problem_responses(401, 403, 404, 409, 422),
)
def report_step(
    uid: Uid, body: ReportStep, ctx: Ctx, who: Operator, _key: IdempotencyKey = None
) -> BoardStatus:
    """Record a step only the desktop tool can see (OTP written, locked, ...)."""
    uid, _ = parse_uid(uid)
    with ctx.board_locks.hold(uid), ctx.write() as session:
        board = load_board(session, uid)
        add_step(session, uid, body.step.value, who, body.detail)
        board.updated_at = now()
        audit.append(
            session,
            actor=who.name,
            role=who.role.value,
            action=f"report:{body.step.value}",
            subject=uid,
            detail={"detail": body.detail},
        )
        session.flush()
        return status_of(session, board)
