"""Hash-chained audit log: each row stores the SHA-256 of the previous row, so an edit shows.

Appends happen inside the caller's transaction (the action and its audit row commit together)
and are serialised by the database (``ServiceContext.write``: an advisory transaction lock on
PostgreSQL, a process lock on SQLite) plus the ``seq`` primary key: two writers can never both
extend the same head, so the chain cannot fork. ``verify_chain`` recomputes every hash.

The chain alone is unkeyed: whoever can write the database can rewrite a row and recompute the
hashes after it. What makes it tamper-evident are the signed checkpoints
(``pki.service.checkpoints``) and ``verify_export``, which checks a complete export offline
against the ICA certificate only.

Rows are bounded: every text field is cut to its column (a cut field keeps the SHA-256 of the
whole value in ``detail``), NUL characters are replaced (PostgreSQL text cannot hold them), and
long strings in ``detail`` are cut the same way. The actor is the client certificate's CN plus
its SHA-256 (``actor_cert``); when the caller does not pass it, the certificate of the request
being served is used (``current_actor_cert``, set by ``pki.service.requests``).
"""

from __future__ import annotations

import hashlib
import json
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pki.service.models import AuditRow

GENESIS_HASH = "0" * 64
#: Longest text kept per field (the column widths of ``svc_audit``).
FIELD_LIMITS = {"actor": 200, "role": 20, "action": 64, "subject": 200, "outcome": 20}
#: Longest string kept inside ``detail``.
DETAIL_STRING_LIMIT = 300

#: SHA-256 of the client certificate of the request being served ("" outside a request).
current_actor_cert: ContextVar[str] = ContextVar("current_actor_cert", default="")


def _row_digest(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical.encode()).hexdigest()


def _hashed_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The fields a row's hash covers (``actor_cert`` only when set: older rows lack it)."""
    fields = {k: row[k] for k in ("seq", "at", "actor", "role", "action", "subject", "outcome", "detail")}
    if row.get("actor_cert"):
        fields["actor_cert"] = row["actor_cert"]
    return fields


def _fields(row: AuditRow) -> dict[str, Any]:
    return _hashed_fields(
        {
            "seq": row.seq,
            "at": row.at,
            "actor": row.actor,
            "role": row.role,
            "action": row.action,
            "subject": row.subject,
            "outcome": row.outcome,
            "detail": row.detail,
            "actor_cert": row.actor_cert,
        }
    )


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def bound(name: str, value: str, limit: int, extra: dict[str, Any]) -> str:
    """``value`` cut to ``limit`` characters; a cut value leaves ``<name>_sha256`` in ``extra``."""
    value = _clean(value)
    if len(value) <= limit:
        return value
    extra[f"{name}_sha256"] = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value[: limit - 1] + "…"


def _bounded_detail(detail: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if isinstance(value, str):
            out[key] = bound(str(key), value, DETAIL_STRING_LIMIT, out)
        else:
            out[key] = value
    return out


def append(
    session: Session,
    *,
    actor: str,
    role: str,
    action: str,
    subject: str,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
    actor_cert: str | None = None,
) -> AuditRow:
    """Add the next chained row to ``session`` (caller commits, inside ``ServiceContext.write``)."""
    extra: dict[str, Any] = {}
    fields = {
        name: bound(name, value, FIELD_LIMITS[name], extra)
        for name, value in (
            ("actor", actor),
            ("role", role),
            ("action", action),
            ("subject", subject),
            ("outcome", outcome),
        )
    }
    body = {**_bounded_detail(detail or {}), **extra}
    head = session.execute(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).scalar_one_or_none()
    row = AuditRow(
        seq=1 if head is None else head.seq + 1,
        at=datetime.now(UTC).isoformat(timespec="microseconds"),
        actor_cert=(current_actor_cert.get() if actor_cert is None else actor_cert)[:64],
        detail=json.dumps(body, sort_keys=True, separators=(",", ":")),
        prev_hash=GENESIS_HASH if head is None else head.row_hash,
        row_hash="",
        **fields,
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


def check_rows(rows: list[dict[str, Any]]) -> ChainReport:
    """Recompute the hash and link of exported rows (``to_json`` dicts), oldest first."""
    prev = GENESIS_HASH
    for index, row in enumerate(rows):
        expected_seq = index + 1
        if row["seq"] != expected_seq:
            return ChainReport(False, index + 1, row["seq"], f"row {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return ChainReport(False, index + 1, row["seq"], "prev_hash does not match the previous row")
        hashed = {**row, "detail": json.dumps(row["detail"], sort_keys=True, separators=(",", ":"))}
        if _row_digest(prev, _hashed_fields(hashed)) != row["row_hash"]:
            return ChainReport(False, index + 1, row["seq"], "row content does not match its hash")
        prev = row["row_hash"]
    return ChainReport(True, len(rows), None, "chain intact")


def verify_chain(session: Session) -> ChainReport:
    """Recompute every row's hash and link; report the first break (edit, deletion or reorder).

    This checks the database against itself only; ``verify_export`` is the check that does not
    trust the database."""
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
    out["actor_cert"] = row.actor_cert
    out["detail"] = json.loads(row.detail)
    out["prev_hash"] = row.prev_hash
    out["row_hash"] = row.row_hash
    return out
