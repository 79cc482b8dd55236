"""/v1/audit: read the hash-chained audit log, its signed checkpoints, and verify the chain
(admin only). ``nusec audit export`` asks for a fresh checkpoint, then reads rows and checkpoints
up to it; ``nusec audit verify`` checks the export offline (``pki.service.checkpoints``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from sqlalchemy import select

from pki.service import audit, checkpoints
from pki.service.models import AuditCheckpoint, AuditRow
from pki.service.problems import Problem, problem_responses
from pki.service.routes.common import Admin, Ctx, resource_router
from pki.service.schemas import (
    AuditCheckpointEntry,
    AuditCheckpointPage,
    AuditEntry,
    AuditPage,
    AuditVerification,
)

router = resource_router()


@router.get("/audit", response_model=AuditPage, responses=problem_responses(401, 403, 422))
def read_audit(
    ctx: Ctx,
    who: Admin,
    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Audit rows with seq > ``after``, oldest first (admin only)."""
    with ctx.sessions() as session:
        rows = (
            session.execute(select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(limit))
            .scalars()
            .all()
        )
        entries = [AuditEntry(**audit.to_json(r)) for r in rows]
    return AuditPage(entries=entries, next_after=entries[-1].seq if len(entries) == limit else None)


@router.get("/audit/verify", response_model=AuditVerification, responses=problem_responses(401, 403))
def verify_audit(ctx: Ctx, who: Admin) -> AuditVerification:
    """Recompute the audit hash chain (admin only)."""
    with ctx.sessions() as session:
        report = audit.verify_chain(session)
    return AuditVerification(
        ok=report.ok, rows=report.rows, first_bad_seq=report.first_bad_seq, reason=report.reason
    )


@router.get(
    "/audit/checkpoints", response_model=AuditCheckpointPage, responses=problem_responses(401, 403, 422)
)
def read_checkpoints(
    ctx: Ctx,
    who: Admin,
    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditCheckpointPage:
    """Signed checkpoints with n > ``after``, oldest first (admin only)."""
    with ctx.sessions() as session:
        rows = (
            session.execute(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.n > after)
                .order_by(AuditCheckpoint.n)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        found = [AuditCheckpointEntry(**checkpoints.to_json(cp)) for cp in rows]
    return AuditCheckpointPage(checkpoints=found, next_after=found[-1].n if len(found) == limit else None)


@router.post(
    "/audit/checkpoints",
    response_model=AuditCheckpointEntry,
    status_code=201,
    responses=problem_responses(401, 403, 503),
)
def make_checkpoint(ctx: Ctx, who: Admin) -> AuditCheckpointEntry:
    """Sign the chain's current head now (admin only): the end point of an export."""
    try:
        return AuditCheckpointEntry(**ctx.checkpoint("request"))
    except checkpoints.AuditTamperedError as exc:
        raise Problem(503, "audit-tampered", "Audit log tampered", str(exc)) from None
