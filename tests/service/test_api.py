"""Every endpoint of the live service over HTTPS with mutual TLS (SoftHSM2 token, SQLite file).

Oracles: ``openssl verify`` for certificates, ``imgtool verify`` for firmware, ``cryptography``
for the board side of the ECDH exchange, python-pkcs11 for the key attributes in the token.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
import subprocess
import uuid
from pathlib import Path

import httpx
import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, ObjectClass

from pki.service.config import ConfigError
from pki.service.server import ServiceHandle
from tests.service.board import Board
from tests.service.client import ServiceClient, ServiceError
from tests.service.conftest import TOKEN_LABEL, Pki
from tests.service.firmware_util import cortex_m_firmware, imgtool_verify

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if slug is not None:
        assert str(body["type"]).endswith("/" + slug), body
    return dict(body)


def _certified(operator: ServiceClient) -> Board:
    board = Board()
    operator.register(board.uid_hex)
    operator.certify(board.uid_hex, board.csr_pem())
    return board


def _firmware_signed(operator: ServiceClient) -> tuple[Board, ec.EllipticCurvePublicKey]:
    board = _certified(operator)
    sb = operator.secure_boot_key(board.uid_hex)
    response = operator.sign_firmware(board.uid_hex, cortex_m_firmware())
    assert response.status_code == 200, response.text
    public = serialization.load_pem_public_key(sb["public_key_pem"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return board, public


def _openssl_verify(pki: Pki, pem: str, tmp: Path) -> None:
    path = tmp / "leaf.pem"
    path.write_text(pem)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.root_pem), "-untrusted", str(pki.ica_pem), str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result.stdout + result.stderr


# --- transport and roles ----------------------------------------------------------------------------


def test_client_without_certificate_is_refused(service: ServiceHandle, pki_files: Pki) -> None:
    with ServiceClient(service.url, pki_files.chain_pem, None, None) as anonymous:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError)):
            anonymous.chain()


def test_client_with_certificate_from_another_ca_is_refused(service: ServiceHandle, pki_files: Pki) -> None:
    with ServiceClient(service.url, pki_files.chain_pem, pki_files.rogue_cert, pki_files.rogue_key) as rogue:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError)):
            rogue.chain()


def test_plain_http_is_not_served(service: ServiceHandle) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        httpx.get(service.url.replace("https://", "http://") + "/v1/ca/chain", timeout=5)


def test_operator_cannot_call_admin_endpoints(operator: ServiceClient) -> None:
    _problem(operator.audit(), 403, "role-forbidden")
    _problem(operator.audit_verify(), 403, "role-forbidden")


def test_insecure_dev_only_on_loopback(pki_files: Pki) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        pki_files.config(insecure_dev=True, host="0.0.0.0").validate(pki_files.token.environ())
    with pytest.raises(ConfigError, match="tls_cert"):
        pki_files.config(tls_cert=None).validate(pki_files.token.environ())


def test_openapi_is_published(operator: ServiceClient) -> None:
    health = operator.http.get("/v1/health").json()
    assert health["status"] == "ok" and health["version"]
    spec = operator.http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/v1/boards", "/v1/boards/{uid}/firmware", "/v1/audit"} <= set(spec["paths"])


# --- CA chain and boards ------------------------------------------------------------------------------


def test_ca_chain_matches_the_files(operator: ServiceClient, pki_files: Pki) -> None:
    chain = operator.chain()
    assert x509.load_pem_x509_certificate(chain["root_pem"].encode()) == x509.load_pem_x509_certificate(
        pki_files.root_pem.read_bytes()
    )
    assert x509.load_pem_x509_certificate(chain["ica_pem"].encode()) == x509.load_pem_x509_certificate(
        pki_files.ica_pem.read_bytes()
    )


def test_register_is_idempotent_and_status_reports_steps(operator: ServiceClient) -> None:
    board = Board()
    first = operator.post("/v1/boards", {"uid": board.uid_hex})
    assert first.status_code == 201
    again = operator.post("/v1/boards", {"uid": board.uid_hex.upper()})
    assert again.status_code == 200
    status = operator.status(board.uid_hex)
    assert status["uid"] == board.uid_hex.upper() and status["state"] == "registered"
    assert [s["step"] for s in status["steps"]] == ["registered"]
    assert status["steps"][0]["actor"] == "alice"
    after = operator.report(board.uid_hex, "ca_written", "entries 0-16")
    assert after["steps"][-1]["step"] == "ca_written" and after["state"] == "registered"


def test_bad_uid_and_unknown_board_are_problems(operator: ServiceClient) -> None:
    _problem(operator.post("/v1/boards", {"uid": "xyz"}), 422, "invalid-request")
    _problem(operator.http.get("/v1/boards/" + "ab" * 12), 404, "board-not-registered")
    _problem(operator.post(f"/v1/boards/{'cd' * 12}/steps", {"step": "nope"}), 422, "invalid-request")
    _problem(operator.post(f"/v1/boards/{'cd' * 12}/steps", {"step": "locked"}), 404, "board-not-registered")


# --- certificates -------------------------------------------------------------------------------------


def test_csr_gives_a_certificate_that_openssl_verifies(
    operator: ServiceClient, pki_files: Pki, tmp_path: Path
) -> None:
    board = Board()
    operator.register(board.uid_hex)
    csr = board.csr_pem()
    issued = operator.certify(board.uid_hex, csr)
    _openssl_verify(pki_files, issued["certificate_pem"], tmp_path)
    cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    assert cert.public_key() == board.identity.public_key()
    assert board.uid.hex().upper() in cert.subject.rfc4514_string()
    again = operator.certify(board.uid_hex, csr)
    assert again["serial"] == issued["serial"] and again["certificate_pem"] == issued["certificate_pem"]
    assert operator.certificate(board.uid_hex)["serial"] == issued["serial"]
    assert operator.status(board.uid_hex)["state"] == "certified"


def test_csr_policy_refusals(operator: ServiceClient) -> None:
    board = Board()
    with pytest.raises(ServiceError) as unregistered:
        operator.certify(board.uid_hex, board.csr_pem())
    assert unregistered.value.status == 404
    operator.register(board.uid_hex)
    other = Board()  # a CSR carrying another UID
    _problem(
        operator.post(f"/v1/boards/{board.uid_hex}/certificate", {"csr_pem": other.csr_pem()}),
        422,
        "csr-refused",
    )
    garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    _problem(
        operator.post(f"/v1/boards/{board.uid_hex}/certificate", {"csr_pem": garbage}), 422, "csr-refused"
    )
    assert operator.status(board.uid_hex)["state"] == "registered"


def test_one_certificate_per_board_same_key_same_certificate(operator: ServiceClient) -> None:
    board = _certified(operator)
    first = operator.certificate(board.uid_hex)["serial"]
    assert operator.certify(board.uid_hex, board.csr_pem())["serial"] == first  # same key, new CSR
    board.identity = ec.generate_private_key(ec.SECP256R1())  # another key: only an admin re-issues
    _problem(
        operator.post(f"/v1/boards/{board.uid_hex}/certificate", {"csr_pem": board.csr_pem()}),
        409,
        "already-certified",
    )


# --- secure-boot key ----------------------------------------------------------------------------------


def test_secure_boot_key_made_once_in_the_hsm_and_never_extractable(
    operator: ServiceClient, pki_files: Pki
) -> None:
    board = Board()
    operator.register(board.uid_hex)
    _problem(operator.post(f"/v1/boards/{board.uid_hex}/secure-boot-key"), 409, "wrong-state")
    operator.certify(board.uid_hex, board.csr_pem())
    first = operator.secure_boot_key(board.uid_hex)
    again = operator.secure_boot_key(board.uid_hex)
    assert first["created"] is True and again["created"] is False
    assert (
        first["public_key_pem"]
        == again["public_key_pem"]
        == operator.get_secure_boot_key(board.uid_hex)["public_key_pem"]
    )
    public = serialization.load_pem_public_key(first["public_key_pem"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert first["public_xy_hex"] == point[1:].hex()

    # The private half is in the token: sensitive, not extractable (python-pkcs11, read-only session).
    lib = pkcs11.lib(pki_files.token.module_path)
    token = lib.get_token(token_label=TOKEN_LABEL)
    with token.open(user_pin=pki_files.token.pin) as session:
        label = f"nusec-sb-{board.uid_hex.upper()}"
        keys = list(session.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        assert len(keys) == 1
        assert keys[0][Attribute.SENSITIVE] is True and keys[0][Attribute.EXTRACTABLE] is False
        assert keys[0][Attribute.TOKEN] is True


# --- firmware -----------------------------------------------------------------------------------------


def test_firmware_is_signed_in_mcuboot_format_that_imgtool_accepts(
    operator: ServiceClient, tmp_path: Path
) -> None:
    board = _certified(operator)
    _problem(operator.sign_firmware(board.uid_hex, cortex_m_firmware()), 409, "wrong-state")
    sb = operator.secure_boot_key(board.uid_hex)
    response = operator.sign_firmware(board.uid_hex, cortex_m_firmware(8192), version="1.4.2+9")
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    result = imgtool_verify(response.content, sb["public_key_pem"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert response.headers["x-image-version"] == "1.4.2+9"
    other = _certified(operator)
    other_sb = operator.secure_boot_key(other.uid_hex)
    refused = imgtool_verify(response.content, other_sb["public_key_pem"], tmp_path)
    assert refused.returncode == 1, refused.stdout
    assert "No signature found for the given key" in refused.stdout
    assert operator.status(board.uid_hex)["state"] == "firmware_signed"


def test_firmware_garbage_oversized_and_wrong_type_are_refused(
    operator: ServiceClient, pki_files: Pki
) -> None:
    board = _certified(operator)
    operator.secure_boot_key(board.uid_hex)
    _problem(operator.sign_firmware(board.uid_hex, b"\x00" * 1024), 422, "bad-firmware")
    _problem(operator.sign_firmware(board.uid_hex, b"MZ\x90\x00" + bytes(200)), 422, "bad-firmware")
    _problem(operator.sign_firmware(board.uid_hex, cortex_m_firmware(), version="v1"), 422, "bad-firmware")
    limit = pki_files.config().max_firmware_bytes
    _problem(operator.sign_firmware(board.uid_hex, cortex_m_firmware(limit + 16)), 413, "firmware-too-large")
    _problem(operator.sign_firmware(board.uid_hex, cortex_m_firmware(4 * limit)), 413, "body-too-large")
    wrong_type = operator.http.post(f"/v1/boards/{board.uid_hex}/firmware", json={"firmware": "x"})
    _problem(wrong_type, 415, "unsupported-media-type")
    assert operator.status(board.uid_hex)["state"] == "secure_boot_key"


# --- key agreement ------------------------------------------------------------------------------------


def test_authenticated_ecdh_agrees_the_same_key_on_both_sides(operator: ServiceClient) -> None:
    board, sb_pub = _firmware_signed(operator)
    eph, board_eph, board_sig = board.start_ecdh()
    answer = operator.key_agreement(board.uid_hex, board_eph, board_sig)
    srv_eph, srv_sig = bytes.fromhex(answer["srv_eph"]), bytes.fromhex(answer["srv_sig"])
    _key, kc_server, kc_board = board.finish_ecdh(
        eph, board_eph, srv_eph, srv_sig, sb_pub
    )  # raises if forged
    assert bytes.fromhex(answer["kc_server"]) == kc_server
    confirmed = operator.confirm(board.uid_hex, answer["session_id"], kc_board)
    assert confirmed.status_code == 200 and confirmed.json()["confirmed"] is True
    status = operator.status(board.uid_hex)
    assert status["state"] == "key_agreed"
    _problem(
        operator.post(
            f"/v1/boards/{board.uid_hex}/key-agreement",
            {"board_eph": board_eph.hex(), "board_sig": board_sig.hex()},
        ),
        409,
        "key-already-agreed",
    )


def test_ecdh_refuses_a_forged_board_signature(operator: ServiceClient) -> None:
    board, _ = _firmware_signed(operator)
    impostor = Board(uid=board.uid)  # same UID, a key the CA never certified
    _eph, board_eph, board_sig = impostor.start_ecdh()
    body = {"board_eph": board_eph.hex(), "board_sig": board_sig.hex()}
    _problem(operator.post(f"/v1/boards/{board.uid_hex}/key-agreement", body), 422, "bad-board-signature")
    off_curve = {"board_eph": "04" + "11" * 64, "board_sig": board_sig.hex()}
    _problem(operator.post(f"/v1/boards/{board.uid_hex}/key-agreement", off_curve), 422, "bad-board-eph")


def test_wrong_key_confirmation_discards_the_exchange(operator: ServiceClient) -> None:
    board, sb_pub = _firmware_signed(operator)
    eph, board_eph, board_sig = board.start_ecdh()
    answer = operator.key_agreement(board.uid_hex, board_eph, board_sig)
    _problem(operator.confirm(board.uid_hex, answer["session_id"], bytes(16)), 422, "key-confirmation-failed")
    _, _, kc_board = board.finish_ecdh(
        eph, board_eph, bytes.fromhex(answer["srv_eph"]), bytes.fromhex(answer["srv_sig"]), sb_pub
    )
    _problem(operator.confirm(board.uid_hex, answer["session_id"], kc_board), 409, "key-agreement-closed")
    # the board may start again with a fresh ephemeral key
    eph, board_eph, board_sig = board.start_ecdh()
    answer = operator.key_agreement(board.uid_hex, board_eph, board_sig)
    _, _, kc_board = board.finish_ecdh(
        eph, board_eph, bytes.fromhex(answer["srv_eph"]), bytes.fromhex(answer["srv_sig"]), sb_pub
    )
    assert operator.confirm(board.uid_hex, answer["session_id"], kc_board).status_code == 200


# --- idempotency --------------------------------------------------------------------------------------


def test_idempotency_key_replays_and_refuses_reuse(operator: ServiceClient) -> None:
    board = Board()
    key = str(uuid.uuid4())
    first = operator.post("/v1/boards", {"uid": board.uid_hex}, key)
    second = operator.post("/v1/boards", {"uid": board.uid_hex}, key)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content and second.headers.get("idempotent-replayed") == "true"
    _problem(operator.post("/v1/boards", {"uid": Board().uid_hex}, key), 422, "idempotency-key-reused")
    _problem(operator.post("/v1/boards", {"uid": board.uid_hex}, "bad key with spaces"), 422)

    operator.certify(board.uid_hex, board.csr_pem())
    operator.secure_boot_key(board.uid_hex)
    fw_key = str(uuid.uuid4())
    headers = {"Content-Type": "application/octet-stream", "Idempotency-Key": fw_key}
    image1 = operator.http.post(
        f"/v1/boards/{board.uid_hex}/firmware", content=cortex_m_firmware(), headers=headers
    )
    image2 = operator.http.post(
        f"/v1/boards/{board.uid_hex}/firmware", content=cortex_m_firmware(), headers=headers
    )
    assert image1.status_code == 200 and image1.content == image2.content  # ECDSA is randomised: a replay


def test_idempotency_keys_are_per_client_and_endpoint(operator: ServiceClient, admin: ServiceClient) -> None:
    key = str(uuid.uuid4())
    board = Board()
    assert operator.post("/v1/boards", {"uid": board.uid_hex}, key).status_code == 201
    assert admin.post("/v1/boards", {"uid": Board().uid_hex}, key).status_code == 201
    step = operator.post(f"/v1/boards/{board.uid_hex}/steps", {"step": "ca_written"}, key)
    assert step.status_code == 200 and "idempotent-replayed" not in step.headers
    # a key on a path no endpoint serves is not tracked: the usual 404/405
    _problem(operator.post("/v1/nowhere", {}, key), 404)
    response = operator.http.put("/v1/boards", json={"uid": board.uid_hex}, headers={"Idempotency-Key": key})
    _problem(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"POST"}
    allow = operator.http.delete(f"/v1/boards/{board.uid_hex}/certificate").headers["allow"]
    assert set(allow.split(", ")) == {"GET", "POST"}


# --- audit --------------------------------------------------------------------------------------------


def test_audit_log_records_actions_and_detects_tampering(
    admin: ServiceClient, operator: ServiceClient, pki_files: Pki
) -> None:
    board = _certified(operator)
    operator.audit()  # a refused admin call is audited too
    entries = admin.all_audit_entries()
    actions = {(e["action"], e["subject"], e["outcome"]) for e in entries}
    assert ("register", board.uid_hex.upper(), "ok") in actions
    assert ("certify", board.uid_hex.upper(), "ok") in actions
    assert any(
        e["outcome"] == "refused" and e["actor"] == "alice" and e["action"] == "GET /v1/audit"
        for e in entries
    )
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert all(entries[i]["prev_hash"] == entries[i - 1]["row_hash"] for i in range(1, len(entries)))
    assert admin.audit_verify().json()["ok"] is True

    db = sqlite3.connect(pki_files.dir / "service.db")
    try:
        (original,) = db.execute("SELECT actor FROM svc_audit WHERE seq = 2").fetchone()
        db.execute("UPDATE svc_audit SET actor = 'mallory' WHERE seq = 2")
        db.commit()
        report = admin.audit_verify().json()
        assert report["ok"] is False and report["first_bad_seq"] == 2
    finally:
        db.execute("UPDATE svc_audit SET actor = ? WHERE seq = 2", (original,))
        db.commit()
        db.close()
    assert admin.audit_verify().json()["ok"] is True


def test_request_while_first_with_same_key_runs_gets_409(operator: ServiceClient, pki_files: Pki) -> None:
    import hashlib
    import time
    from datetime import UTC, datetime

    from pki.service.idempotency import request_fingerprint

    key = str(uuid.uuid4())
    body = json.dumps({"uid": Board().uid_hex}).encode()
    der = x509.load_pem_x509_certificate(pki_files.operator_cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    scope = hashlib.sha256(f"{hashlib.sha256(der).hexdigest()}\0POST\0/v1/boards\0{key}".encode()).hexdigest()
    fingerprint = request_fingerprint("POST", "/v1/boards", b"", "application/json", body)
    db = sqlite3.connect(pki_files.dir / "service.db")
    try:  # what the middleware writes when a first request with this key starts (lease held)
        db.execute(
            "INSERT INTO svc_idempotency (scope, request_sha256, created_at, owner, lease_until, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                scope,
                fingerprint,
                datetime.now(UTC).isoformat(),
                "someone",
                time.time() + 600,
                time.time() + 600,
            ),
        )
        db.commit()
    finally:
        db.close()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    _problem(operator.http.post("/v1/boards", content=body, headers=headers), 409, "idempotency-in-progress")
    other = json.dumps({"uid": Board().uid_hex}).encode()
    _problem(operator.http.post("/v1/boards", content=other, headers=headers), 422, "idempotency-key-reused")


def test_board_identity_certificate_cannot_call_the_api(
    service: ServiceHandle, operator: ServiceClient, pki_files: Pki, tmp_path: Path
) -> None:
    board = Board()
    operator.register(board.uid_hex)
    cert = tmp_path / "board.pem"
    cert.write_text(operator.certify(board.uid_hex, board.csr_pem())["certificate_pem"])
    key = tmp_path / "board.key"
    key.write_bytes(
        board.identity.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with ServiceClient(service.url, pki_files.chain_pem, cert, key) as as_board:
        _problem(as_board.http.get("/v1/ca/chain"), 403, "no-role")
