"""/v1/audit: read the hash-chained audit log and verify its chain (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from sqlalchemy import select

from pki.service import audit
from pki.service.models import AuditRow
from pki.service.problems import problem_responses
from pki.service.routes.common import Admin, Ctx, resource_router
from pki.service.schemas import AuditEntry, AuditPage, AuditVerification

router = resource_router()


@router.get("/audit", response_model=AuditPage, responses=problem_responses(401, 403, 422))
def read_audit(
    ctx: Ctx,
    who: Admin,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
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
