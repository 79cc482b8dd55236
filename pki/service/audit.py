"""Hash-chained audit log: each row stores the SHA-256 of the previous row, so an edit shows.

Appends happen inside the caller's transaction (the action and its audit row commit together)
and are serialised by a process lock plus the ``seq`` primary key: two writers can never both
extend the same head, so the chain cannot fork. ``verify_chain`` recomputes every hash.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pki.service.models import AuditRow

GENESIS_HASH = "0" * 64

_append_lock = threading.Lock()


def _row_digest(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical.encode()).hexdigest()


def _fields(row: AuditRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "role": row.role,
        "action": row.action,
        "subject": row.subject,
        "outcome": row.outcome,
        "detail": row.detail,
    }


def append_lock() -> threading.Lock:
    """The lock a writer holds from ``append`` until its commit (one head extender at a time)."""
    return _append_lock


def append(
    session: Session,
    *,
    actor: str,
    role: str,
    action: str,
    subject: str,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditRow:
    """Add the next chained row to ``session`` (caller commits, holding ``append_lock()``)."""
    head = session.execute(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).scalar_one_or_none()
    row = AuditRow(
        seq=1 if head is None else head.seq + 1,
        at=datetime.now(UTC).isoformat(timespec="microseconds"),
        actor=actor,
        role=role,
        action=action,
        subject=subject,
        outcome=outcome,
        detail=json.dumps(detail or {}, sort_keys=True, separators=(",", ":")),
        prev_hash=GENESIS_HASH if head is None else head.row_hash,
        row_hash="",
    )
    row.row_hash = _row_digest(row.prev_hash, _fields(row))
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class ChainReport:
    """Result of checking the chain: ``first_bad_seq`` is the first row whose hash does not hold."""

    ok: bool
    rows: int
    first_bad_seq: int | None
    reason: str


def verify_chain(session: Session) -> ChainReport:
    """Recompute every row's hash and link; report the first break (edit, deletion or reorder)."""
    prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for row in session.execute(select(AuditRow).order_by(AuditRow.seq)).scalars():
        count += 1
        if row.seq != expected_seq:
            return ChainReport(False, count, row.seq, f"row {expected_seq} is missing")
        if row.prev_hash != prev:
            return ChainReport(False, count, row.seq, "prev_hash does not match the previous row")
        if _row_digest(prev, _fields(row)) != row.row_hash:
            return ChainReport(False, count, row.seq, "row content does not match its hash")
        prev = row.row_hash
        expected_seq += 1
    return ChainReport(True, count, None, "chain intact")


def to_json(row: AuditRow) -> dict[str, Any]:
    out = _fields(row)
    out["detail"] = json.loads(row.detail)
    out["prev_hash"] = row.prev_hash
    out["row_hash"] = row.row_hash
    return out
