"""Defect 2 and the upload cap, against the live service over HTTPS + mTLS.

A client that declares ``Content-Length: 100000``, sends 50,000 bytes and closes must get nothing
processed: no signature, no state change, no idempotency record, so the genuine retry with the
same Idempotency-Key succeeds. The same for a JSON body cut short. And 16 concurrent uploads of
the maximum size must stay under the memory bound of docs/service-api.md (the server process's
peak RSS, ``VmHWM`` in ``/proc/PID/status``).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest

from pki.service.config import DEFAULT_MAX_CONCURRENT_UPLOADS, upload_memory_bound
from pki.service.server import LOG_LEVEL_ENV, ServiceHandle, run_in_background
from tests.service.board import Board
from tests.service.client import ServiceClient, tls_context
from tests.service.conftest import Pki, aborted_requests, wait_for_abort
from tests.service.firmware_util import cortex_m_firmware

MAX_FIRMWARE = 2 * 1024 * 1024
BODY_TIMEOUT = 4.0


def send_cut_short(service_url: str, pki: Pki, head: str, body: bytes, declared: int) -> None:
    """Send ``head`` declaring ``declared`` body bytes, then only ``body``, then close the socket."""
    url = urlparse(service_url)
    assert url.hostname is not None and url.port is not None
    context = tls_context(pki.chain_pem, pki.operator_cert, pki.operator_key)
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=url.hostname) as tls:
            request = head.replace("\n", "\r\n") + f"Content-Length: {declared}\r\n\r\n"
            tls.sendall(request.encode() + body)
            try:
                tls.unwrap()
            except (OSError, ssl.SSLError):
                pass


@pytest.fixture(scope="module")
def big_operator(big_service: ServiceHandle, pki_files: Pki) -> Iterator[ServiceClient]:
    with ServiceClient(
        big_service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
    ) as c:
        yield c


def _firmware_ready(operator: ServiceClient) -> Board:
    board = Board()
    operator.register(board.uid_hex)
    operator.certify(board.uid_hex, board.csr_pem())
    operator.secure_boot_key(board.uid_hex)
    return board


def test_firmware_body_cut_short_is_not_signed_and_the_retry_succeeds(
    big_service: ServiceHandle, pki_files: Pki, big_operator: ServiceClient
) -> None:
    service, operator = big_service, big_operator
    board = _firmware_ready(operator)
    key = str(uuid.uuid4())
    image = cortex_m_firmware(100_000)
    head = (
        f"POST /v1/boards/{board.uid_hex}/firmware HTTP/1.1\nHost: 127.0.0.1\n"
        f"Content-Type: application/octet-stream\nIdempotency-Key: {key}\n"
    )
    before = aborted_requests(service)
    send_cut_short(service.url, pki_files, head, image[:50_000], declared=len(image))
    wait_for_abort(service, before)
    status = operator.status(board.uid_hex)
    assert status["state"] == "secure_boot_key", status
    assert all(step["step"] != "firmware_signed" for step in status["steps"])

    retry = operator.http.post(
        f"/v1/boards/{board.uid_hex}/firmware",
        content=image,
        headers={"Content-Type": "application/octet-stream", "Idempotency-Key": key},
    )
    assert retry.status_code == 200, retry.text
    assert retry.headers.get("idempotent-replayed") is None
    assert operator.status(board.uid_hex)["state"] == "firmware_signed"


def test_json_body_cut_short_registers_nothing_and_the_retry_succeeds(
    big_service: ServiceHandle, pki_files: Pki, big_operator: ServiceClient
) -> None:
    service, operator = big_service, big_operator
    board = Board()
    key = str(uuid.uuid4())
    body = json.dumps({"uid": board.uid_hex}).encode() + b" " * 200  # the prefix alone is valid JSON
    head = (
        f"POST /v1/boards HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\nIdempotency-Key: {key}\n"
    )
    before = aborted_requests(service)
    send_cut_short(service.url, pki_files, head, body[:100], declared=len(body))
    wait_for_abort(service, before)
    assert operator.http.get(f"/v1/boards/{board.uid_hex}").status_code == 404

    retry = operator.http.post(
        "/v1/boards", content=body, headers={"Content-Type": "application/json", "Idempotency-Key": key}
    )
    assert retry.status_code == 201, retry.text


# --- the upload cap ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_service(pki_files: Pki) -> Iterator[ServiceHandle]:
    """A service taking 2 MiB firmware (the production default) on its own database."""
    config = pki_files.config(
        max_firmware_bytes=MAX_FIRMWARE,
        db_url=f"sqlite:///{pki_files.dir / 'bodies.db'}",
        body_timeout=BODY_TIMEOUT,
    )
    env = {**pki_files.token.environ(), LOG_LEVEL_ENV: "info"}  # aborted requests are logged at info
    handle = run_in_background(config, env=env, migrate=True)
    try:
        yield handle
    finally:
        handle.stop()


def _peak_rss(pid: int) -> int:
    """Peak resident set size of ``pid`` in bytes (``VmHWM``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def _reset_peak_rss(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def test_concurrent_maximum_size_uploads_stay_under_the_memory_bound(
    big_service: ServiceHandle, pki_files: Pki
) -> None:
    pid = big_service.pid
    assert pid is not None
    with ServiceClient(
        big_service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
    ) as c:
        board = _firmware_ready(c)
        image = cortex_m_firmware(MAX_FIRMWARE - 64 * 1024)
        assert c.sign_firmware(board.uid_hex, image).status_code == 200  # warm up allocator and imports
    time.sleep(0.5)
    _reset_peak_rss(pid)
    before = _peak_rss(pid)
    statuses: list[int] = []
    lock = threading.Lock()

    def upload() -> None:
        context = tls_context(pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key)
        with httpx.Client(base_url=big_service.url, verify=context, timeout=120) as client:
            response = client.post(
                f"/v1/boards/{board.uid_hex}/firmware",
                content=image,
                headers={"Content-Type": "application/octet-stream", "Idempotency-Key": str(uuid.uuid4())},
            )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=upload) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    growth = _peak_rss(pid) - before
    assert statuses == [200] * 16
    bound = upload_memory_bound(MAX_FIRMWARE, DEFAULT_MAX_CONCURRENT_UPLOADS)
    assert growth <= bound, f"peak RSS grew by {growth / 2**20:.1f} MiB; bound {bound / 2**20:.1f} MiB"


def test_uploads_in_progress_do_not_hold_up_other_requests(
    big_service: ServiceHandle, pki_files: Pki
) -> None:
    """Both upload slots taken by clients still sending: a GET and a small POST answer at once."""
    url = urlparse(big_service.url)
    assert url.hostname is not None and url.port is not None
    context = tls_context(pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key)
    slow = []
    for _ in range(DEFAULT_MAX_CONCURRENT_UPLOADS):
        raw = socket.create_connection((url.hostname, url.port), timeout=10)
        tls = context.wrap_socket(raw, server_hostname=url.hostname)
        head = (
            f"POST /v1/boards/{'00' * 12}/firmware HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {MAX_FIRMWARE}\r\n\r\n"
        )
        tls.sendall(head.encode() + b"\0" * 1024)  # ... and the rest never comes (yet)
        slow.append(tls)
    try:
        time.sleep(0.5)
        with ServiceClient(
            big_service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
        ) as c:
            started = time.monotonic()
            assert c.http.get("/v1/health", timeout=5).status_code == 200
            assert c.post("/v1/boards", {"uid": Board().uid_hex}).status_code == 201
            assert time.monotonic() - started < 5
    finally:
        for tls in slow:
            tls.close()


def _answer(tls: ssl.SSLSocket) -> str:
    """What the server sent before closing (or up to the end of a short answer)."""
    data = b""
    while b"}" not in data:
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def test_a_sender_too_slow_gets_408_and_frees_its_slot(big_service: ServiceHandle, pki_files: Pki) -> None:
    url = urlparse(big_service.url)
    assert url.hostname is not None and url.port is not None
    context = tls_context(pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key)
    slow = []
    for _ in range(DEFAULT_MAX_CONCURRENT_UPLOADS):
        tls = context.wrap_socket(
            socket.create_connection((url.hostname, url.port), timeout=30), server_hostname=url.hostname
        )
        head = (
            f"POST /v1/boards/{'00' * 12}/firmware HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {MAX_FIRMWARE}\r\n\r\n"
        )
        tls.sendall(head.encode() + b"\0" * 1024)
        slow.append(tls)
    try:
        answers = [_answer(tls) for tls in slow]  # waits for the timeout
        assert all(a.startswith("HTTP/1.1 408") and "body-timeout" in a for a in answers), answers
    finally:
        for tls in slow:
            tls.close()
    with ServiceClient(
        big_service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
    ) as c:
        board = _firmware_ready(c)
        assert c.sign_firmware(board.uid_hex, cortex_m_firmware(MAX_FIRMWARE // 2)).status_code == 200
