"""The board state machine as data: which operation each state allows, and where it leads.

One table (``RULES``) decides every board operation of the service; ``docs/service-api.md``
shows the same table (``markdown_table`` renders it, and ``tests/service/test_board_states.py``
checks the document against this module and drives the live service through every cell). The
state moves forward only: by what the service did or verified itself (certificate issued,
secure-boot key made, firmware signed, key confirmed) and by client reports, which may only move
a board forward and never re-open an operation the table has closed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from pki.service.schemas import STATE_ORDER, BoardState, ReportedStep

OK = "ok"


class Op(enum.StrEnum):
    """Every operation on a board, as the table names it."""

    REGISTER = "register"
    STATUS = "status"
    CERTIFY = "certify"
    REISSUE = "reissue"
    GET_CERTIFICATE = "get-certificate"
    SECURE_BOOT_KEY = "secure-boot-key"
    GET_SECURE_BOOT_KEY = "get-secure-boot-key"
    SIGN_FIRMWARE = "sign-firmware"
    KEY_AGREEMENT = "key-agreement"
    KEY_CONFIRM = "key-confirm"
    REPORT_CERT_WRITTEN = "report-cert-written"
    REPORT_OTP_WRITTEN = "report-otp-written"
    REPORT_FIRMWARE_WRITTEN = "report-firmware-written"
    REPORT_LOCKED = "report-locked"
    REPORT_OTHER = "report-other"


#: Operations that only read; everything else changes something (and a revoked board refuses it).
READS = frozenset({Op.STATUS, Op.GET_CERTIFICATE, Op.GET_SECURE_BOOT_KEY})


@dataclass(frozen=True)
class Refusal:
    status: int
    title: str
    hint: str = ""  # what to do instead, appended to the problem's detail


#: The refusals the table uses: slug -> HTTP status and title.
REFUSALS: Mapping[str, Refusal] = {
    "wrong-state": Refusal(409, "Board not ready"),
    "already-certified": Refusal(
        409,
        "Board already certified",
        "the board has its one certificate (the same key gets it again); an admin may re-issue "
        "for a new key while the board has no secure-boot key",
    ),
    "no-certificate": Refusal(404, "No certificate"),
    "secure-boot-key-exists": Refusal(
        409, "Board has a secure-boot key", "the identity certificate can no longer be re-issued"
    ),
    "no-secure-boot-key": Refusal(404, "No secure-boot key"),
    "firmware-signing-closed": Refusal(
        409, "Firmware signing closed", "signing ends once the board is locked or its key agreed"
    ),
    "key-already-agreed": Refusal(409, "Key already agreed"),
}

S = BoardState
_ALL = tuple(STATE_ORDER)


def _row(default: str, **cells: str) -> dict[BoardState, str]:
    """A table row: ``default`` in every state, ``cells`` (state name -> ok/slug) where different."""
    row = dict.fromkeys(_ALL, default)
    for name, value in cells.items():
        row[BoardState(name)] = value
    return row


def _from(
    first: BoardState, refusal: str, *, until: BoardState | None = None, after: str = ""
) -> dict[BoardState, str]:
    """``ok`` from ``first`` on (up to ``until`` included), ``refusal`` before, ``after`` beyond."""
    row: dict[BoardState, str] = {}
    for state in _ALL:
        i = STATE_ORDER.index(state)
        if i < STATE_ORDER.index(first):
            row[state] = refusal
        elif until is not None and i > STATE_ORDER.index(until):
            row[state] = after
        else:
            row[state] = OK
    return row


#: operation -> state -> "ok" or the refusal slug.
RULES: Mapping[Op, Mapping[BoardState, str]] = {
    Op.REGISTER: _row(OK),
    Op.STATUS: _row(OK),
    Op.CERTIFY: _row("already-certified", registered=OK),
    Op.REISSUE: _from(S.CERTIFIED, "no-certificate", until=S.CERT_WRITTEN, after="secure-boot-key-exists"),
    Op.GET_CERTIFICATE: _from(S.CERTIFIED, "no-certificate"),
    Op.SECURE_BOOT_KEY: _from(S.CERTIFIED, "wrong-state"),
    Op.GET_SECURE_BOOT_KEY: _from(S.SECURE_BOOT_KEY, "no-secure-boot-key"),
    Op.SIGN_FIRMWARE: _from(
        S.SECURE_BOOT_KEY, "wrong-state", until=S.OTP_WRITTEN, after="firmware-signing-closed"
    ),
    Op.KEY_AGREEMENT: _from(S.FIRMWARE_SIGNED, "wrong-state", until=S.LOCKED, after="key-already-agreed"),
    Op.KEY_CONFIRM: _from(S.FIRMWARE_SIGNED, "wrong-state", until=S.LOCKED, after="key-already-agreed"),
    Op.REPORT_CERT_WRITTEN: _from(S.CERTIFIED, "wrong-state"),
    Op.REPORT_OTP_WRITTEN: _from(S.FIRMWARE_SIGNED, "wrong-state"),
    Op.REPORT_FIRMWARE_WRITTEN: _from(S.FIRMWARE_SIGNED, "wrong-state"),
    Op.REPORT_LOCKED: _from(S.FIRMWARE_SIGNED, "wrong-state"),
    Op.REPORT_OTHER: _row(OK),
}

#: operation -> the state a success moves the board to (never backwards; None: unchanged).
MOVES_TO: Mapping[Op, BoardState | None] = {
    Op.REGISTER: S.REGISTERED,
    Op.STATUS: None,
    Op.CERTIFY: S.CERTIFIED,
    Op.REISSUE: None,
    Op.GET_CERTIFICATE: None,
    Op.SECURE_BOOT_KEY: S.SECURE_BOOT_KEY,
    Op.GET_SECURE_BOOT_KEY: None,
    Op.SIGN_FIRMWARE: S.FIRMWARE_SIGNED,
    Op.KEY_AGREEMENT: None,
    Op.KEY_CONFIRM: S.KEY_AGREED,
    Op.REPORT_CERT_WRITTEN: S.CERT_WRITTEN,
    Op.REPORT_OTP_WRITTEN: S.OTP_WRITTEN,
    Op.REPORT_FIRMWARE_WRITTEN: None,
    Op.REPORT_LOCKED: S.LOCKED,
    Op.REPORT_OTHER: None,
}

#: Reported steps -> the table's operation for them.
REPORT_OPS: Mapping[ReportedStep, Op] = {
    ReportedStep.CERT_WRITTEN: Op.REPORT_CERT_WRITTEN,
    ReportedStep.SECURE_BOOT_KEY_WRITTEN: Op.REPORT_OTP_WRITTEN,
    ReportedStep.OTP_WRITTEN: Op.REPORT_OTP_WRITTEN,
    ReportedStep.FIRMWARE_WRITTEN: Op.REPORT_FIRMWARE_WRITTEN,
    ReportedStep.LOCKED: Op.REPORT_LOCKED,
}


def report_op(step: ReportedStep) -> Op:
    return REPORT_OPS.get(step, Op.REPORT_OTHER)


def decide(op: Op, state: str) -> str:
    """``ok`` or the refusal slug for ``op`` on a board in ``state``."""
    return RULES[op][BoardState(state)]


def moved(state: str, op: Op) -> BoardState:
    """The state after ``op`` succeeded on a board in ``state`` (forward only)."""
    current = BoardState(state)
    target = MOVES_TO[op]
    if target is None or STATE_ORDER.index(target) <= STATE_ORDER.index(current):
        return current
    return target


def markdown_table() -> str:
    """The table as it stands in docs/service-api.md (operations down, states across)."""
    head = "| operation | " + " | ".join(f"`{s.value}`" for s in _ALL) + " | moves to |"
    rule = "|---" * (len(_ALL) + 2) + "|"
    lines = [head, rule]
    for op, row in RULES.items():
        cells = " | ".join(row[s] if row[s] == OK else f"`{row[s]}`" for s in _ALL)
        target = MOVES_TO[op]
        lines.append(f"| `{op.value}` | {cells} | {f'`{target.value}`' if target else '—'} |")
    return "\n".join(lines)
