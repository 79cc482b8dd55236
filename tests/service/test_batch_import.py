"""POST /v1/boards/{uid}/secure-boot-key/import over HTTPS/mTLS against the real service, with bulk OTP
batches built by ``pki.batch`` against the service's own SoftHSM2 token (batch KEK and seal
signer live there). Oracles: the batch manifest's public keys, imgtool, a board modelled with
``cryptography`` (tests/service/board.py), and the audit chain."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pki import merkle
from pki.batch import (
    ensure_batch_keys,
    key_import_body,
    read_batch_info,
    read_line,
)
from pki.service.server import ServiceHandle
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import BATCH_KEK, BATCH_SIGNER, Pki, build_test_batch, running_service
from tests.service.firmware_util import cortex_m_firmware, imgtool_verify

PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Batches:
    count_dir: Path  # 4 images, blank UIDs
    uid_dir: Path  # 2 images made for UID_A, UID_B
    uids: tuple[bytes, bytes]


@pytest.fixture(scope="module")
def batches(pki_files: Pki) -> Batches:
    """Made before the service starts, with the KEK and signer on the service's token."""
    with pki_files.token.open_backend() as backend:
        ensure_batch_keys(backend, BATCH_KEK, BATCH_SIGNER)
    uids = (bytes.fromhex("a1" * 12), bytes.fromhex("b2" * 12))
    (pki_files.dir / "uids.txt").write_text("".join(u.hex() + "\n" for u in uids))
    return Batches(
        count_dir=build_test_batch(pki_files, pki_files.dir / "batch-count", count=4),
        uid_dir=build_test_batch(
            pki_files, pki_files.dir / "batch-uids", uids=str(pki_files.dir / "uids.txt")
        ),
        uids=uids,
    )


@pytest.fixture(scope="module")
def service(pki_files: Pki, batches: Batches) -> Iterator[ServiceHandle]:
    with running_service(pki_files) as handle:
        yield handle


def _problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"].endswith("/" + slug), response.json()


def _certified(operator: ServiceClient, uid: bytes | None = None) -> Board:
    board = Board(uid=uid) if uid is not None else Board()
    operator.register(board.uid_hex)
    operator.certify(board.uid_hex, board.csr_pem())
    return board


def _import(
    operator: ServiceClient, board: Board, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return operator.post(f"/v1/boards/{board.uid_hex}/secure-boot-key/import", body, key)


def _pem(point: bytes) -> str:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _resealed(pki: Pki, batch_dir: Path, index: int, line: dict[str, Any]) -> dict[str, Any]:
    """A body whose line was changed and the batch re-sealed with the real on-token signer: what a
    batch builder holding the signer (but not the right wrapped key) could produce."""
    info = read_batch_info(batch_dir)
    body = key_import_body(batch_dir, index)
    lines = [read_line(info, i).encode() for i in range(info.count)]
    lines[index] = json.dumps(line, sort_keys=True, separators=(",", ":")).encode()
    leaves = [merkle.leaf_hash(x) for x in lines]
    statement = dict(body["seal"]["statement"], merkle_root=merkle.root(leaves).hex())
    digest = hashlib.sha256(json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()).digest()
    with pki.token.open_backend() as backend:
        signature = backend.sign_digest(BATCH_SIGNER, digest)
    return {
        **body,
        "line": lines[index].decode(),
        "path": [p.hex() for p in merkle.proof(leaves, index)],
        "seal": {"statement": statement, "signature": signature.hex()},
    }


def test_imported_batch_key_signs_firmware_and_ecdh_like_a_service_key(
    operator: ServiceClient, batches: Batches, tmp_path: Path
) -> None:
    board = _certified(operator)
    body = key_import_body(batches.count_dir, 1)
    sb_pub = read_line(read_batch_info(batches.count_dir), 1).sb_pub
    first = _import(operator, board, body, key=str(uuid.uuid4()))
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["created"] is True and answer["public_xy_hex"] == sb_pub[1:].hex()
    assert answer["public_key_pem"] == _pem(sb_pub)
    again = _import(operator, board, body).json()  # the same image again: same key, not created
    assert again["created"] is False and again["public_xy_hex"] == answer["public_xy_hex"]
    assert operator.get_secure_boot_key(board.uid_hex)["public_xy_hex"] == sb_pub[1:].hex()
    assert operator.status(board.uid_hex)["state"] == "secure_boot_key"
    # the service-made-key endpoint answers with the imported key too, never makes a second one
    assert operator.secure_boot_key(board.uid_hex)["public_xy_hex"] == sb_pub[1:].hex()

    signed = operator.sign_firmware(board.uid_hex, cortex_m_firmware(4096), version="2.0.0")
    assert signed.status_code == 200, signed.text
    result = imgtool_verify(signed.content, _pem(sb_pub), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    eph, board_eph, board_sig = board.start_ecdh()
    ka = operator.key_agreement(board.uid_hex, board_eph, board_sig)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sb_pub)
    _key, kc_server, kc_board = board.finish_ecdh(  # srv_sig checked with the batch key
        eph, board_eph, bytes.fromhex(ka["srv_eph"]), bytes.fromhex(ka["srv_sig"]), public
    )
    assert kc_server.hex() == ka["kc_server"]
    confirmed = operator.confirm(board.uid_hex, ka["session_id"], kc_board)
    assert confirmed.status_code == 200 and confirmed.json()["confirmed"] is True


def test_idempotency_key_replays_the_import(operator: ServiceClient, batches: Batches) -> None:
    board = _certified(operator)
    body = key_import_body(batches.count_dir, 2)
    key = str(uuid.uuid4())
    first = _import(operator, board, body, key)
    replay = _import(operator, board, body, key)
    assert first.status_code == replay.status_code == 200
    assert replay.content == first.content and replay.headers["idempotent-replayed"] == "true"
    other = copy.deepcopy(body)
    other["path"] = other["path"][::-1]
    _problem(_import(operator, board, other, key), 422, "idempotency-key-reused")


def test_one_image_one_board_and_one_key_per_board(operator: ServiceClient, batches: Batches) -> None:
    a, b, c = _certified(operator), _certified(operator), _certified(operator)
    body = key_import_body(batches.count_dir, 3)
    assert _import(operator, a, body).status_code == 200
    _problem(_import(operator, b, body), 409, "batch-image-taken")  # the same image for another board
    _problem(_import(operator, a, key_import_body(batches.count_dir, 0)), 409, "secure-boot-key-exists")
    operator.secure_boot_key(c.uid_hex)  # c has a service-made key: a batch key is refused
    _problem(_import(operator, c, key_import_body(batches.count_dir, 0)), 409, "secure-boot-key-exists")
    uncertified = Board()
    operator.register(uncertified.uid_hex)
    _problem(_import(operator, uncertified, key_import_body(batches.count_dir, 0)), 409, "wrong-state")


def test_uid_list_images_only_go_to_their_board(operator: ServiceClient, batches: Batches) -> None:
    owner = _certified(operator, batches.uids[0])
    stranger = _certified(operator)
    body = key_import_body(batches.uid_dir, 0)
    _problem(_import(operator, stranger, body), 422, "batch-image-for-other-board")
    answer = _import(operator, owner, body)
    assert answer.status_code == 200, answer.text
    sb_pub = read_line(read_batch_info(batches.uid_dir), 0).sb_pub
    assert answer.json()["public_xy_hex"] == sb_pub[1:].hex()


def test_forged_or_altered_batches_are_refused_and_audited(
    operator: ServiceClient, admin: ServiceClient, pki_files: Pki, batches: Batches
) -> None:
    board = _certified(operator)
    good = key_import_body(batches.count_dir, 0)
    info = read_batch_info(batches.count_dir)

    line = json.loads(good["line"])
    flipped = dict(
        line, wrapped_key=("00" if line["wrapped_key"][:2] != "00" else "01") + line["wrapped_key"][2:]
    )
    _problem(
        _import(operator, board, dict(good, line=json.dumps(flipped, sort_keys=True, separators=(",", ":")))),
        422,
        "bad-batch-proof",
    )
    _problem(_import(operator, board, dict(good, path=good["path"][:-1])), 422, "bad-batch-proof")

    # re-sealed by the real signer, but the wrapped key does not unwrap / belongs to another image
    _problem(
        _import(operator, board, _resealed(pki_files, batches.count_dir, 0, flipped)),
        422,
        "batch-key-refused",
    )
    other_pub = read_line(info, 1).sb_pub.hex()
    swapped = _resealed(pki_files, batches.count_dir, 0, dict(line, sb_pub=other_pub))
    _problem(_import(operator, board, swapped), 422, "batch-key-refused")

    # a seal by a key that is not the signer on the service's token
    rogue = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(
        json.dumps(good["seal"]["statement"], sort_keys=True, separators=(",", ":")).encode()
    ).digest()
    forged_sig = rogue.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))).hex()
    _problem(
        _import(operator, board, dict(good, seal={**good["seal"], "signature": forged_sig})),
        422,
        "bad-batch-seal",
    )
    renamed = json.loads(good["batch_json"])
    renamed["hsm"]["signer_label"] = "someone-else"
    _problem(_import(operator, board, dict(good, batch_json=json.dumps(renamed))), 422, "batch-not-trusted")
    edited = good["batch_json"].replace('"count": 4', '"count": 4 ')
    _problem(_import(operator, board, dict(good, batch_json=edited)), 422, "bad-batch-seal")
    _problem(_import(operator, board, dict(good, line="{}")), 422, "bad-batch-line")

    # nothing was imported for the board, and every refusal is in the audit log
    assert operator.status(board.uid_hex)["secure_boot_key"] is False
    assert _import(operator, board, good).status_code == 200
    entries = admin.all_audit_entries()
    mine = [(e["action"], e["outcome"]) for e in entries if e["subject"] == board.uid_hex.upper()]
    assert mine.count(("secure-boot-key-import", "refused")) == 8
    assert mine.count(("secure-boot-key-import", "ok")) == 1
    ok = next(
        e
        for e in entries
        if e["subject"] == board.uid_hex.upper()
        and e["action"] == "secure-boot-key-import"
        and e["outcome"] == "ok"
    )
    assert ok["detail"]["batch_id"] == info.batch_id.hex() and ok["detail"]["index"] == 0
    assert admin.audit_verify().json()["ok"] is True


def test_batch_chain_must_be_the_services(operator: ServiceClient, pki_files: Pki, batches: Batches) -> None:
    board = _certified(operator)
    good = key_import_body(batches.count_dir, 0)
    other = json.loads(good["batch_json"])
    other["shared"]["root_cert_sha256"] = "00" * 32
    _problem(_import(operator, board, dict(good, batch_json=json.dumps(other))), 422, "batch-chain-mismatch")
