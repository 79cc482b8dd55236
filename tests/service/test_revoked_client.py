"""Client-certificate revocation: `nusec pki revoke` on the service's database withdraws an
operator at once (cache TTL 0 here), over real HTTPS + mutual TLS against the real service with
SoftHSM2; the refusal is a problem document and lands in the audit log. Also: the switch that
refuses certificates the CA store never recorded, and the status cache's expiry rules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from pki import store
from pki.ca import OPERATOR_CLIENT
from pki.service.client_revocation import ClientCertStatus, StatusCache
from pki.service.config import ConfigError
from pki.service.db import make_engine, make_sessions, upgrade
from pki.service.server import ServiceHandle, run_in_background
from tests.service.client import ServiceClient
from tests.service.conftest import ICA_LABEL, TOKEN_LABEL, Pki

NUSEC = Path(sys.executable).parent / "nusec"
PROBLEM = "application/problem+json"


def nusec_pki(pki: Pki, *args: str | Path) -> dict[str, object]:
    """Run `nusec pki ... --json` as the OEM would; its JSON answer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUSEC_")}
    env.update(pki.token.environ())
    res = subprocess.run(
        [str(NUSEC), "pki", *map(str, args), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert isinstance(doc, dict)
    return doc


@dataclass(frozen=True)
class Operators:
    """Two operators issued with `nusec pki operator-cert --db-url` (so recorded) and the service."""

    service: ServiceHandle
    db_url: str
    folder: Path
    serials: dict[str, str]

    def client(self, pki: Pki, stem: str) -> ServiceClient:
        return ServiceClient(
            self.service.url, pki.chain_pem, self.folder / f"{stem}.pem", self.folder / f"{stem}.key"
        )


@pytest.fixture(scope="module")
def operators(pki_files: Pki) -> Iterator[Operators]:
    config = pki_files.config(client_revocation_ttl=0)
    upgrade(make_engine(config.db_url))  # `nusec db upgrade`, before `nusec pki` may write to it
    folder = pki_files.dir / "operators"
    hsm_uri = f"pkcs11:token={TOKEN_LABEL};object={ICA_LABEL}?module-path={pki_files.token.module_path}"
    serials: dict[str, str] = {}
    for name in ("bob", "carol"):
        doc = nusec_pki(
            pki_files,
            "operator-cert",
            "--hsm-uri",
            hsm_uri,
            "--ica-cert",
            pki_files.ica_pem,
            "--root-cert",
            pki_files.root_pem,
            "--name",
            name,
            "--role",
            "operator",
            "--out",
            folder,
            "--db-url",
            config.db_url,
        )
        assert doc["recorded"] is True
        serials[name] = str(doc["serial"])
    handle = run_in_background(config, env=pki_files.token.environ())
    try:
        yield Operators(handle, config.db_url, folder, serials)
    finally:
        handle.stop()
        if handle.log_path is not None:
            handle.log_path.unlink(missing_ok=True)


def _is_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    doc = response.json()
    assert isinstance(doc, dict)
    assert doc["type"] == f"https://nusec.dev/problems/{slug}"
    assert doc["status"] == status
    return dict(doc)


def test_revoked_operator_is_refused_others_still_work_and_the_refusal_is_audited(
    pki_files: Pki, operators: Operators
) -> None:
    uid = "0badc0de" * 3
    with (
        operators.client(pki_files, "bob") as bob,
        operators.client(pki_files, "carol") as carol,
        ServiceClient(
            operators.service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
        ) as alice,
        ServiceClient(
            operators.service.url, pki_files.chain_pem, pki_files.admin_cert, pki_files.admin_key
        ) as admin,
    ):
        assert bob.http.get("/v1/health").status_code == 200
        first = bob.post("/v1/boards", {"uid": uid}, key="bob-register-1")
        assert first.status_code in (200, 201), first.text

        revoked = nusec_pki(
            pki_files,
            "revoke",
            "--db-url",
            operators.db_url,
            operators.serials["bob"],
            "--reason",
            "keyCompromise",
        )
        assert revoked["serial"] == operators.serials["bob"]

        # The very next request on the same kept-alive connection is refused...
        doc = _is_problem(bob.http.get("/v1/health"), 401, "client-certificate-revoked")
        assert operators.serials["bob"] in str(doc["detail"])
        assert doc["instance"] == "/v1/health"
        # ...and so is a replay of an answer stored for bob before the revocation.
        _is_problem(
            bob.post("/v1/boards", {"uid": uid}, key="bob-register-1"), 401, "client-certificate-revoked"
        )
        # A fresh connection too.
        with operators.client(pki_files, "bob") as bob_again:
            _is_problem(bob_again.http.get(f"/v1/boards/{uid}"), 401, "client-certificate-revoked")

        assert carol.http.get("/v1/health").status_code == 200
        _is_problem(carol.http.get(f"/v1/boards/{uid}"), 403, "not-board-owner")  # works, not her board
        assert admin.http.get(f"/v1/boards/{uid}").status_code == 200
        assert alice.http.get("/v1/health").status_code == 200  # never recorded: accepted by default

        refusals = [e for e in admin.all_audit_entries() if e["actor"] == "bob" and e["outcome"] == "refused"]
        assert [e["action"] for e in refusals] == [
            "GET /v1/health",
            "POST /v1/boards",
            f"GET /v1/boards/{uid}",
        ]
        for entry in refusals:
            assert entry["role"] == "operator"
            assert entry["detail"]["problem"] == "client-certificate-revoked"
            assert entry["detail"]["serial"] == operators.serials["bob"]
            assert entry["detail"]["status"] == 401
        verify = admin.audit_verify()
        assert verify.status_code == 200 and verify.json()["ok"] is True


def test_revoking_again_keeps_the_operator_out_and_the_others_in(
    pki_files: Pki, operators: Operators
) -> None:
    """Revocation is per certificate: carol stays in after bob's, and `revoke` twice is a no-op."""
    nusec_pki(pki_files, "revoke", "--db-url", operators.db_url, operators.serials["bob"])
    with operators.client(pki_files, "carol") as carol, operators.client(pki_files, "bob") as bob:
        assert carol.http.get("/v1/health").status_code == 200
        _is_problem(bob.http.get("/v1/health"), 401, "client-certificate-revoked")


def _record(db_url: str, *pems: Path) -> None:
    """Record certificates in the CA store, as `operator-cert --db-url` does at issuance."""
    engine = make_engine(db_url)
    try:
        with make_sessions(engine)() as session:
            for pem in pems:
                store.record_certificate(
                    session, x509.load_pem_x509_certificate(pem.read_bytes()), OPERATOR_CLIENT.name
                )
            session.commit()
    finally:
        engine.dispose()


def test_required_record_refuses_certificates_the_store_does_not_know(pki_files: Pki) -> None:
    config = pki_files.config(
        db_url=f"sqlite:///{pki_files.dir / 'strict.db'}",
        client_revocation_ttl=0,
        require_recorded_client_certs=True,
    )
    handle = run_in_background(config, env=pki_files.token.environ(), migrate=True)
    try:
        _record(config.db_url, pki_files.admin_cert)
        with (
            ServiceClient(
                handle.url, pki_files.chain_pem, pki_files.admin_cert, pki_files.admin_key
            ) as admin,
            ServiceClient(
                handle.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
            ) as alice,
        ):
            assert admin.http.get("/v1/health").status_code == 200
            doc = _is_problem(alice.http.get("/v1/health"), 401, "client-certificate-unknown")
            serial = store.serial_hex(
                x509.load_pem_x509_certificate(pki_files.operator_cert.read_bytes()).serial_number
            )
            assert serial in str(doc["detail"])
            _record(config.db_url, pki_files.operator_cert)  # recorded later: admitted (TTL 0)
            assert alice.http.get("/v1/health").status_code == 200
            refused = [e for e in admin.all_audit_entries() if e["outcome"] == "refused"]
            assert [(e["actor"], e["detail"]["problem"]) for e in refused] == [
                ("alice", "client-certificate-unknown")
            ]
    finally:
        handle.stop()
        if handle.log_path is not None:
            handle.log_path.unlink(missing_ok=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_status_cache_expires_good_answers_after_the_ttl_and_keeps_revocations() -> None:
    clock = FakeClock()
    cache = StatusCache(5.0, clock=clock)
    good = ClientCertStatus(revoked_at=None, recorded=True)
    bad = ClientCertStatus(revoked_at="2026-11-24T00:00:00+00:00", recorded=True)
    cache.put("good", good)
    cache.put("bad", bad)
    clock.now += 4.9
    assert cache.get("good") == good
    clock.now += 0.1  # a revocation made now is seen from here on
    assert cache.get("good") is None
    clock.now += 10_000
    assert cache.get("bad") == bad
    uncached = StatusCache(0.0, clock=clock)
    uncached.put("good", good)
    assert uncached.get("good") is None
    small = StatusCache(5.0, clock=clock, max_entries=2)
    for key in ("a", "b", "c"):
        small.put(key, good)
    assert small.get("a") is None and small.get("c") == good


@pytest.mark.parametrize("ttl", [-1.0, 301.0])
def test_out_of_range_ttl_is_refused_naming_the_field(pki_files: Pki, ttl: float) -> None:
    with pytest.raises(ConfigError, match="client_revocation_ttl"):
        pki_files.config(client_revocation_ttl=ttl).validate(pki_files.token.environ())
