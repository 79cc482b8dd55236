"""Per-operator quotas (defect 10 of issue 11): a service with small quotas, started for this
module; past the quota the caller gets 429 problem+json and nothing is created (no board row,
no HSM object), while other operators keep their own quota."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pki.service.db import make_engine, upgrade
from pki.service.schemas import BoardState
from pki.service.server import ServiceHandle, run_in_background
from tests.service import pg
from tests.service.board_driver import STEPS, BoardRun, drive_to, operator_credentials
from tests.service.client import ServiceClient
from tests.service.conftest import Pki


@pytest.fixture(scope="module")
def service(pki_files: Pki) -> Iterator[ServiceHandle]:
    config = pki_files.config(max_registrations=4, max_hsm_keys=3)
    engine = make_engine(config.db_url)
    upgrade(engine)  # what `nusec db upgrade` does
    engine.dispose()
    handle = run_in_background(config, env=pki_files.token.environ())
    try:
        yield handle
    finally:
        handle.stop()
        if handle.log_path is not None:
            handle.log_path.unlink(missing_ok=True)


def _quota(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    doc = response.json()
    assert doc["type"].endswith("/quota-exceeded") and doc["retry_after"] > 0


def test_registrations_and_hsm_keys_are_limited_per_operator(
    operator: ServiceClient, admin: ServiceClient, pki_files: Pki
) -> None:
    signed = drive_to(BoardState.FIRMWARE_SIGNED, operator, admin)  # registration 1, HSM key 1
    keyed = [drive_to(BoardState.SECURE_BOOT_KEY, operator, admin) for _ in range(2)]  # 2, 3 and keys 2, 3
    last = drive_to(BoardState.CERTIFIED, operator, admin)  # registration 4
    extra = BoardRun(operator, admin)
    _quota(operator.post("/v1/boards", {"uid": extra.uid}))
    assert operator.http.get(f"/v1/boards/{extra.uid}").status_code == 404  # nothing was registered
    assert operator.post("/v1/boards", {"uid": last.uid}).status_code == 200  # status of its own board

    _quota(last.make_secure_boot_key())
    assert operator.http.get(f"/v1/boards/{last.uid}/secure-boot-key").status_code == 404
    _quota(signed.begin_ecdh()[0])  # an exchange makes an HSM key too
    assert keyed[0].make_secure_boot_key().status_code == 200  # an existing key is no new object

    theirs = drive_to(BoardState.SECURE_BOOT_KEY, admin, admin)  # another caller, its own quota
    assert theirs.state() == "secure_boot_key"


def _fire_at_the_quota(clients: list[ServiceClient], pki: Pki) -> None:
    """8 registrations and then 4 secure-boot keys at once from one fresh operator, spread over
    ``clients`` (one per service process): exactly the quota succeeds (4 boards, 3 keys), and the
    HSM holds no key for the refused board."""
    runs = [BoardRun(clients[i % len(clients)], clients[0]) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(lambda run: run.operator.post("/v1/boards", {"uid": run.uid}).status_code, runs)
        )
    assert sorted(codes) == [201] * 4 + [429] * 4
    mine = [run for run, code in zip(runs, codes, strict=True) if code == 201]
    for run in mine:
        STEPS[BoardState.CERTIFIED](run)
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda run: run.make_secure_boot_key().status_code, mine))
    assert sorted(made) == [200] * 3 + [429]
    refused = mine[made.index(429)]
    assert clients[0].http.get(f"/v1/boards/{refused.uid}/secure-boot-key").status_code == 404
    with pki.token.open_backend() as backend:
        held = [backend.find_ec_keypair(f"nusec-sb-{run.uid.upper()}") is not None for run in mine]
    assert held == [code == 200 for code in made]


def test_concurrent_requests_cannot_overshoot_a_quota(service: ServiceHandle, pki_files: Pki) -> None:
    creds = operator_credentials(pki_files, "erin")
    with ServiceClient(service.url, pki_files.chain_pem, creds.cert, creds.key) as erin:
        _fire_at_the_quota([erin], pki_files)


def test_two_processes_on_postgresql_cannot_overshoot_a_quota_either(pki_files: Pki) -> None:
    if not pg.available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(pg.MISSING)
        pytest.skip(pg.MISSING)
    creds = operator_credentials(pki_files, "frank")
    with pg.throwaway_postgres() as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        config = pki_files.config(db_url=url, max_registrations=4, max_hsm_keys=3)
        services = [run_in_background(config, env=pki_files.token.environ()) for _ in range(2)]
        try:
            with (
                ServiceClient(services[0].url, pki_files.chain_pem, creds.cert, creds.key) as one,
                ServiceClient(services[1].url, pki_files.chain_pem, creds.cert, creds.key) as two,
            ):
                _fire_at_the_quota([one, two], pki_files)
        finally:
            for handle in services:
                handle.stop()
