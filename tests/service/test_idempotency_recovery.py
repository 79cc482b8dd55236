"""Defect 3 against the live service: idempotency that recovers, replays completely, and forgets.

- A service SIGKILLed while keyed requests are in flight leaves records "in progress"; after a
  restart, retries with the same keys must succeed once the lease has run out (not 409 forever).
- Replays carry the same status, headers (``X-Image-SHA256``, ``X-Image-Version``) and body.
- Content-Type is part of the request: a stored 415 is never replayed to a corrected retry.
- Upper- and lower-case spellings of one UID are one key space.
- Records expire after the retention: then the key may be used afresh and the rows are gone.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pki.service.server import ServiceHandle, run_in_background
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import Pki
from tests.service.firmware_util import cortex_m_firmware, imgtool_verify

LEASE_S = 1.5
RETENTION_S = 4.0
OCTETS = "application/octet-stream"


def _db(pki: Pki) -> Path:
    return pki.dir / "idem.db"


def _start(pki: Pki) -> ServiceHandle:
    config = pki.config(
        db_url=f"sqlite:///{_db(pki)}",
        idempotency_lease=LEASE_S,
        idempotency_retention=RETENTION_S,
        max_firmware_bytes=2 * 1024 * 1024,
    )
    return run_in_background(config, env=pki.token.environ(), migrate=True)


@pytest.fixture(scope="module")
def idem_service(pki_files: Pki) -> Iterator[ServiceHandle]:
    handle = _start(pki_files)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def client(idem_service: ServiceHandle, pki_files: Pki) -> Iterator[ServiceClient]:
    with ServiceClient(
        idem_service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
    ) as c:
        yield c


def _ready(client: ServiceClient) -> tuple[Board, str]:
    board = Board()
    client.register(board.uid_hex)
    client.certify(board.uid_hex, board.csr_pem())
    return board, client.secure_boot_key(board.uid_hex)["public_key_pem"]


def _sign(
    client: ServiceClient, uid: str, image: bytes, key: str, content_type: str = OCTETS
) -> httpx.Response:
    return client.http.post(
        f"/v1/boards/{uid}/firmware",
        content=image,
        params={"version": "1.2.3"},
        headers={"Content-Type": content_type, "Idempotency-Key": key},
    )


def test_replay_returns_the_same_status_headers_and_body(client: ServiceClient) -> None:
    board, _ = _ready(client)
    key = str(uuid.uuid4())
    first = _sign(client, board.uid_hex, cortex_m_firmware(), key)
    replay = _sign(client, board.uid_hex, cortex_m_firmware(), key)
    assert first.status_code == replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    for name in ("content-type", "x-image-sha256", "x-image-version"):
        assert replay.headers[name] == first.headers[name], name


def test_a_stored_415_is_not_replayed_to_the_corrected_retry(client: ServiceClient) -> None:
    board, _ = _ready(client)
    key = str(uuid.uuid4())
    wrong = _sign(client, board.uid_hex, cortex_m_firmware(), key, content_type="text/plain")
    assert wrong.status_code == 415
    corrected = _sign(client, board.uid_hex, cortex_m_firmware(), key)
    assert corrected.status_code != 415 and corrected.headers.get("idempotent-replayed") is None
    assert corrected.json()["type"].endswith("/idempotency-key-reused")  # a different request
    assert _sign(client, board.uid_hex, cortex_m_firmware(), str(uuid.uuid4())).status_code == 200


def test_upper_and_lower_case_uids_share_one_key_space(client: ServiceClient) -> None:
    board = Board()
    client.register(board.uid_hex)
    key = str(uuid.uuid4())
    body = {"csr_pem": board.csr_pem()}
    first = client.post(f"/v1/boards/{board.uid_hex.upper()}/certificate", body, key)
    second = client.post(f"/v1/boards/{board.uid_hex.lower()}/certificate", body, key)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.content == first.content


def test_records_expire_after_the_retention(client: ServiceClient, pki_files: Pki) -> None:
    board = Board()
    key = str(uuid.uuid4())
    assert client.post("/v1/boards", {"uid": board.uid_hex}, key).status_code == 201
    other = Board()
    assert client.post("/v1/boards", {"uid": other.uid_hex}, key).status_code == 422  # reused, for now
    time.sleep(RETENTION_S + 0.5)
    assert client.post("/v1/boards", {"uid": other.uid_hex}, key).status_code == 201  # forgotten
    time.sleep(RETENTION_S + 0.5)
    client.post("/v1/boards", {"uid": Board().uid_hex}, str(uuid.uuid4()))  # any claim purges
    with sqlite3.connect(_db(pki_files)) as db:
        (old,) = db.execute(
            "SELECT COUNT(*) FROM svc_idempotency WHERE expires_at < ?", (time.time(),)
        ).fetchone()
    assert old == 0


def _in_flight(db: Path) -> int:
    with sqlite3.connect(db, timeout=5) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM svc_idempotency WHERE status_code IS NULL").fetchone()
    return int(count)


def test_a_killed_service_leaves_no_key_stuck(
    idem_service: ServiceHandle, pki_files: Pki, tmp_path: Path
) -> None:
    """SIGKILL while keyed 2 MiB signings run; after a restart every retry gets its answer."""
    with ServiceClient(
        idem_service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
    ) as c:
        board, public_pem = _ready(c)
    image = cortex_m_firmware(2 * 1024 * 1024 - 64 * 1024)
    keys = [str(uuid.uuid4()) for _ in range(6)]
    seen_in_flight = 0

    def fire(key: str) -> None:
        try:
            with ServiceClient(
                idem_service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
            ) as c:
                _sign(c, board.uid_hex, image, key)
        except httpx.HTTPError:
            pass  # the server died under us: that is the point

    threads = [threading.Thread(target=fire, args=(k,)) for k in keys]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and seen_in_flight == 0:
        seen_in_flight = _in_flight(_db(pki_files))
        time.sleep(0.005)
    idem_service.kill()
    for thread in threads:
        thread.join()
    stuck = _in_flight(_db(pki_files))
    assert seen_in_flight > 0 and stuck > 0, "no request was caught in flight"

    restarted = _start(pki_files)
    try:
        with ServiceClient(
            restarted.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
        ) as c:
            for key in keys:
                deadline = time.monotonic() + LEASE_S * 4
                response = _sign(c, board.uid_hex, image, key)
                while response.status_code == 409 and time.monotonic() < deadline:
                    time.sleep(0.3)
                    response = _sign(c, board.uid_hex, image, key)
                assert response.status_code == 200, response.text
                assert imgtool_verify(response.content, public_pem, tmp_path).returncode == 0
                again = _sign(c, board.uid_hex, image, key)
                assert (
                    again.headers.get("idempotent-replayed") == "true" and again.content == response.content
                )
        assert _in_flight(_db(pki_files)) == 0
    finally:
        restarted.stop()
