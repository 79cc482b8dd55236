"""/v1/boards: register a board, read its state, record the steps only the desktop can see, and
(admin) grant a board to another operator."""

from __future__ import annotations

from fastapi import Response

from pki import store
from pki.service import audit
from pki.service.board_states import Op, report_op
from pki.service.models import BoardGrant, BoardProgress
from pki.service.problems import problem_responses
from pki.service.routes.common import (
    Admin,
    Ctx,
    IdempotencyKey,
    Operator,
    Uid,
    add_step,
    board_for,
    board_locked,
    check_quota,
    move,
    now,
    parse_uid,
    resource_router,
    status_of,
)
from pki.service.schemas import BoardState, BoardStatus, GrantRequest, RegisterBoard, ReportStep

router = resource_router()


@router.post(
    "/boards",
    response_model=BoardStatus,
    status_code=201,
    responses={
        200: {"description": "Already registered", "model": BoardStatus},
        **problem_responses(401, 403, 409, 422, 429),
    },
)
def register_board(
    body: RegisterBoard, ctx: Ctx, who: Operator, response: Response, _key: IdempotencyKey = None
) -> BoardStatus:
    """Register a board by its 12-byte UID; the caller owns it. Registering it again returns its
    status (200), to its owner only."""
    uid, _ = parse_uid(body.uid)
    with board_locked(ctx, who, "register", uid), ctx.write() as session:
        if session.get(BoardProgress, uid) is not None:
            response.status_code = 200
            return status_of(session, board_for(ctx, session, who, uid, Op.REGISTER))
        check_quota(ctx, session, who, "registrations")
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
    """The board's provisioning state and the history of its steps (owner, grantees, admins)."""
    uid, _ = parse_uid(uid)
    with ctx.sessions() as session:
        return status_of(session, board_for(ctx, session, who, uid, Op.STATUS))


@router.post(
    "/boards/{uid}/steps",
    response_model=BoardStatus,
    responses=problem_responses(401, 403, 404, 409, 422),
)
def report_step(
    uid: Uid, body: ReportStep, ctx: Ctx, who: Operator, _key: IdempotencyKey = None
) -> BoardStatus:
    """Record a step only the desktop tool can see (OTP written, locked, ...). A report may move the
    board forward (state table), never back; one the table refuses is refused (409)."""
    uid, _ = parse_uid(uid)
    op = report_op(body.step)
    with board_locked(ctx, who, f"report:{body.step.value}", uid), ctx.write() as session:
        board = board_for(ctx, session, who, uid, op)
        add_step(session, uid, body.step.value, who, body.detail)
        move(board, op)
        audit.append(
            session,
            actor=who.name,
            role=who.role.value,
            action=f"report:{body.step.value}",
            subject=uid,
            detail={"detail": body.detail, "state": board.state},
        )
        session.flush()
        return status_of(session, board)


@router.post(
    "/boards/{uid}/grants",
    response_model=BoardStatus,
    responses=problem_responses(401, 403, 404, 422),
)
def grant_board(
    uid: Uid, body: GrantRequest, ctx: Ctx, who: Admin, _key: IdempotencyKey = None
) -> BoardStatus:
    """Let another operator (by certificate CN) act on the board as its owner does (admin only;
    audited with the reason)."""
    uid, _ = parse_uid(uid)
    with board_locked(ctx, who, "grant", uid), ctx.write() as session:
        board = board_for(ctx, session, who, uid, Op.STATUS)
        if session.get(BoardGrant, (uid, body.operator)) is None:
            session.add(BoardGrant(uid=uid, operator=body.operator, granted_by=who.name, at=now()))
        add_step(session, uid, "granted", who, f"to {body.operator}: {body.reason}")
        audit.append(
            session,
            actor=who.name,
            role=who.role.value,
            action="grant",
            subject=uid,
            detail={"operator": body.operator, "reason": body.reason},
        )
        session.flush()
        return status_of(session, board)
