"""The board state table of docs/service-api.md, read from the document itself, against the live
service: every state x operation pair is driven over HTTPS + mTLS and must answer as the table
says (ok, or the refusal slug), and an allowed operation must move the board where the table
says (never backwards). The document must also be the table the service enforces
(``pki.service.board_states``)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from pki.service import board_states
from pki.service.schemas import STATE_ORDER, BoardState
from tests.service.board_driver import OPERATIONS, BoardRun, drive_to
from tests.service.client import ServiceClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "service-api.md"


def documented_table() -> tuple[list[str], dict[str, dict[str, str]], dict[str, str | None]]:
    """(states, operation -> state -> ok/slug, operation -> moves to) parsed from the document."""
    lines = [line.strip() for line in DOC.read_text().splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("| operation |"))
    cells = [[c.strip().strip("`") for c in line.strip("|").split("|")] for line in lines[start:]]
    rows = []
    for row in cells[2:]:
        if len(row) != len(cells[0]):
            break
        rows.append(row)
    states = cells[0][1:-1]
    table = {row[0]: dict(zip(states, row[1:-1], strict=True)) for row in rows}
    moves = {row[0]: (None if row[-1] == "—" else row[-1]) for row in rows}
    return states, table, moves


def test_the_documented_table_is_the_one_the_service_enforces() -> None:
    states, table, moves = documented_table()
    assert states == [s.value for s in STATE_ORDER]
    assert table == {op.value: {s.value: v for s, v in row.items()} for op, row in board_states.RULES.items()}
    assert moves == {op.value: (t.value if t else None) for op, t in board_states.MOVES_TO.items()}
    assert set(table) == set(OPERATIONS)  # the driver below knows every operation
    for row in table.values():  # every refusal slug is one the service defines (and documents)
        for cell in row.values():
            assert cell == "ok" or cell in board_states.REFUSALS
            assert cell == "ok" or f"`{cell}`" in DOC.read_text().split("## Errors", 1)[1]


def _slug(response: httpx.Response) -> str:
    if response.status_code < 300:
        return "ok"
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return str(response.json()["type"]).rsplit("/", 1)[1]


#: Operations that leave the board as it was when allowed: one board per state serves them all.
_HARMLESS = {"register", "status", "get-certificate", "get-secure-boot-key", "report-other"}


@pytest.mark.parametrize("state", [s.value for s in STATE_ORDER])
def test_every_operation_in_every_state_answers_as_the_documented_table_says(
    state: str, operator: ServiceClient, admin: ServiceClient
) -> None:
    _, table, moves = documented_table()
    shared = drive_to(BoardState(state), operator, admin)
    seen: dict[str, str] = {}
    for op, row in table.items():
        expected = row[state]
        run = shared if expected != "ok" or op in _HARMLESS else drive_to(BoardState(state), operator, admin)
        response = OPERATIONS[op](run)
        seen[op] = _slug(response)
        after = run.state()
        if expected == "ok":
            target = moves[op]
            forward = target is not None and STATE_ORDER.index(BoardState(target)) > STATE_ORDER.index(
                BoardState(state)
            )
            assert after == (target if forward else state), f"{op} in {state} left the board {after}"
        else:
            expected_status = board_states.REFUSALS[expected].status
            assert response.status_code == expected_status, (op, state, response.text)
            assert after == state, f"refused {op} in {state} still moved the board to {after}"
    assert seen == {op: row[state] for op, row in table.items()}


def test_reports_never_reopen_an_operation(operator: ServiceClient, admin: ServiceClient) -> None:
    """A board reported locked stays locked whatever is reported after: earlier reports are
    recorded but firmware signing and certification stay closed."""
    run: BoardRun = drive_to(BoardState.LOCKED, operator, admin)
    for step in ("cert_written", "otp_written", "ca_written", "failed"):
        assert run.report(step).status_code == 200
        assert run.state() == "locked"
    assert _slug(OPERATIONS["sign-firmware"](run)) == "firmware-signing-closed"
    assert _slug(OPERATIONS["certify"](run)) == "already-certified"
    assert _slug(OPERATIONS["reissue"](run)) == "secure-boot-key-exists"
    steps = [s["step"] for s in operator.status(run.uid)["steps"]]
    assert steps[-4:] == ["cert_written", "otp_written", "ca_written", "failed"]


def test_a_report_the_table_refuses_is_refused_not_recorded(
    operator: ServiceClient, admin: ServiceClient
) -> None:
    run = drive_to(BoardState.CERTIFIED, operator, admin)
    response = run.report("locked")
    assert _slug(response) == "wrong-state" and response.status_code == 409
    assert "locked" not in [s["step"] for s in operator.status(run.uid)["steps"]]
    assert re.search(r"report-locked is refused", response.json()["detail"])
