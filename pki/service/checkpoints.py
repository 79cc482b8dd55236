"""Signed audit checkpoints: the HSM-held ICA key states "the chain had ``seq`` rows ending in
``head_hash`` at ``at``", as Certificate Transparency's signed tree heads do for a log.

Why: the hash chain is unkeyed, so whoever can write the database could rewrite a row and
recompute every later hash. A checkpoint cannot be recomputed without the ICA key, which never
leaves the HSM; so a rewritten row breaks the checkpoint after it, and a verifier needs only the
ICA certificate (``verify_export``), never the database.

When: every ``rows`` appended rows (in the appending transaction), at every start, on request
(``POST /v1/audit/checkpoints``, what ``nusec audit export`` asks for first), and every
``interval`` seconds as a heartbeat even when nothing was appended. Checkpoints are numbered
without gaps (``n``), and each one states the interval it promises, so a verifier sees rows cut
from the end as a checkpoint that covers rows no longer there, or — if those checkpoints were
deleted too — as a silence longer than the promised interval. Before signing, the service also
checks that the row it last appended or signed is still in the database with the same hash
(``HeadMemory``): a tail cut while it runs is refused with ``AuditTamperedError``, never signed
over.

Signature: raw r||s (P-256) over SHA-256(``MESSAGE_PREFIX`` || canonical JSON of
``n, seq, head_hash, at, kind`` and the interval in milliseconds); the prefix keeps it apart
from certificate signatures.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sqlalchemy import select
from sqlalchemy.orm import Session

from nucore import NativeError
from nucore.p256 import signature_to_der
from pki.service.audit import GENESIS_HASH, ChainReport, check_rows
from pki.service.models import AuditCheckpoint, AuditRow

MESSAGE_PREFIX = b"NuSec-audit-checkpoint-v1\0"
#: A heartbeat may come this much later than promised (a loaded machine, a long transaction).
GAP_SLACK_FACTOR = 2.0
GAP_SLACK_S = 5.0
EXPORT_FORMAT = "nusec-audit-export/1"

#: Signs a SHA-256 digest with the ICA key, returning raw r||s (64 bytes).
DigestSigner = Callable[[bytes], bytes]


class AuditTamperedError(Exception):
    """The database no longer holds a row this service wrote or signed."""


def message(fields: dict[str, Any]) -> bytes:
    """The bytes a checkpoint signature covers."""
    keys = ("n", "seq", "head_hash", "at", "kind")
    signed = {k: fields[k] for k in keys}
    signed["interval_ms"] = round(float(fields["interval"]) * 1000)  # an integer: no float spelling
    canonical = json.dumps(signed, sort_keys=True, separators=(",", ":"))
    return MESSAGE_PREFIX + canonical.encode()


def to_json(cp: AuditCheckpoint) -> dict[str, Any]:
    return {
        "n": cp.n,
        "seq": cp.seq,
        "head_hash": cp.head_hash,
        "at": cp.at,
        "kind": cp.kind,
        "interval": cp.interval,
        "signature": cp.signature,
    }


class HeadMemory:
    """The last (seq, row_hash) this process appended or signed; a cut tail no longer has it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._hash = GENESIS_HASH

    def remember(self, seq: int, row_hash: str) -> None:
        with self._lock:
            if seq >= self._seq:
                self._seq, self._hash = seq, row_hash

    def check(self, session: Session) -> None:
        with self._lock:
            seq, expected = self._seq, self._hash
        if seq == 0:
            return
        found = session.get(AuditRow, seq)
        if found is None or found.row_hash != expected:
            raise AuditTamperedError(
                f"audit row {seq} written by this service is {'gone' if found is None else 'changed'}"
            )


def head(session: Session) -> tuple[int, str]:
    row = session.execute(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).scalar_one_or_none()
    return (0, GENESIS_HASH) if row is None else (row.seq, row.row_hash)


def last(session: Session) -> AuditCheckpoint | None:
    return session.execute(
        select(AuditCheckpoint).order_by(AuditCheckpoint.n.desc()).limit(1)
    ).scalar_one_or_none()


def due(session: Session, every_rows: int) -> bool:
    """Whether the rows appended since the last checkpoint call for a new one."""
    seq, _ = head(session)
    previous = last(session)
    return seq - (previous.seq if previous is not None else 0) >= every_rows


def make(
    session: Session, sign: DigestSigner, kind: str, interval: float, memory: HeadMemory
) -> AuditCheckpoint:
    """Sign the current head as checkpoint ``n + 1`` (inside the caller's audit transaction)."""
    memory.check(session)
    seq, head_hash = head(session)
    previous = last(session)
    fields: dict[str, Any] = {
        "n": 1 if previous is None else previous.n + 1,
        "seq": seq,
        "head_hash": head_hash,
        "at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "kind": kind,
        "interval": interval,
    }
    signature = sign(hashlib.sha256(message(fields)).digest())
    cp = AuditCheckpoint(
        n=fields["n"],
        seq=seq,
        head_hash=head_hash,
        at=fields["at"],
        kind=kind,
        interval=float(interval),
        signature=signature.hex(),
    )
    session.add(cp)
    session.flush()
    memory.remember(seq, head_hash)
    return cp


# --- offline verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportReport:
    """Result of ``verify_export``: ``ok`` and the first problem found, plus what was checked."""

    ok: bool
    rows: int
    checkpoints: int
    reason: str
    restarts: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "checkpoints": self.checkpoints,
            "restarts": self.restarts,
            "reason": self.reason,
        }


def _signature_ok(cp: dict[str, Any], public_key: ec.EllipticCurvePublicKey) -> bool:
    try:
        raw = bytes.fromhex(cp["signature"])
        digest = hashlib.sha256(message(cp)).digest()
        public_key.verify(signature_to_der(raw), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, NativeError, ValueError, KeyError, TypeError):
        return False
    return True


def verify_export(
    doc: dict[str, Any], public_key: ec.EllipticCurvePublicKey, previous: dict[str, Any] | None = None
) -> ExportReport:
    """Check an export (``nusec audit export``) against the ICA public key only.

    The chain must be intact; every checkpoint numbered without gaps, signed by the ICA key,
    and matching the row it names; the last checkpoint must cover the last row; no silence
    between checkpoints longer than promised except before a start checkpoint; and, given an
    older export, this one must extend it (its last checkpoint's row still there, same hash)."""
    rows: list[dict[str, Any]] = list(doc.get("rows", []))
    cps: list[dict[str, Any]] = list(doc.get("checkpoints", []))
    if doc.get("format") != EXPORT_FORMAT:
        return ExportReport(False, len(rows), len(cps), f"not a {EXPORT_FORMAT} document")
    chain: ChainReport = check_rows(rows)
    if not chain.ok:
        return ExportReport(
            False, len(rows), len(cps), f"chain broken at row {chain.first_bad_seq}: {chain.reason}"
        )
    if not cps:
        return ExportReport(False, len(rows), 0, "no checkpoint: nothing vouches for these rows")
    hashes_by_seq = {0: GENESIS_HASH, **{r["seq"]: r["row_hash"] for r in rows}}
    restarts = 0
    for index, cp in enumerate(cps):
        if cp.get("n") != index + 1:
            return ExportReport(False, len(rows), len(cps), f"checkpoint {index + 1} is missing")
        if not _signature_ok(cp, public_key):
            return ExportReport(
                False, len(rows), len(cps), f"checkpoint {cp['n']}: signature does not verify"
            )
        if cp["seq"] not in hashes_by_seq:
            return ExportReport(
                False,
                len(rows),
                len(cps),
                f"checkpoint {cp['n']} covers row {cp['seq']}, which is missing (rows cut)",
            )
        if hashes_by_seq[cp["seq"]] != cp["head_hash"]:
            return ExportReport(
                False,
                len(rows),
                len(cps),
                f"checkpoint {cp['n']}: row {cp['seq']} does not match (rows rewritten)",
            )
        if index > 0:
            before = cps[index - 1]
            if cp["seq"] < before["seq"] or cp["at"] < before["at"]:
                return ExportReport(False, len(rows), len(cps), f"checkpoint {cp['n']} goes backwards")
            gap = (datetime.fromisoformat(cp["at"]) - datetime.fromisoformat(before["at"])).total_seconds()
            allowed = float(before["interval"]) * GAP_SLACK_FACTOR + GAP_SLACK_S
            if cp["kind"] == "start":
                restarts += 1
            elif gap > allowed:
                return ExportReport(
                    False,
                    len(rows),
                    len(cps),
                    f"no checkpoint for {gap:.0f} s before checkpoint {cp['n']} (promised every "
                    f"{before['interval']:g} s): checkpoints removed, rows cut?",
                )
    if cps[-1]["seq"] != len(rows):
        return ExportReport(
            False,
            len(rows),
            len(cps),
            f"rows {cps[-1]['seq'] + 1}..{len(rows)} are not covered by a checkpoint",
        )
    if previous is not None:
        old = list(previous.get("checkpoints", []))
        if old:
            mark = old[-1]
            if not _signature_ok(mark, public_key):
                return ExportReport(
                    False, len(rows), len(cps), "the previous export's last checkpoint does not verify"
                )
            if hashes_by_seq.get(mark["seq"]) != mark["head_hash"]:
                return ExportReport(
                    False,
                    len(rows),
                    len(cps),
                    f"row {mark['seq']} of the previous export is gone or changed (rows cut or rewritten)",
                )
            if len(cps) < mark["n"] or cps[mark["n"] - 1]["signature"] != mark["signature"]:
                return ExportReport(
                    False, len(rows), len(cps), f"checkpoint {mark['n']} of the previous export is gone"
                )
    return ExportReport(True, len(rows), len(cps), "chain and checkpoints verified", restarts)
