"""Scale-out on one real PostgreSQL server: two ``nusec serve`` processes (same HSM token, same
database), many clients, and the two PostgreSQL-only 500s of defect 4.

- 16 clients certify boards across both processes (``NUSEC_SCALE_BOARDS``, default 48; the
  issue's full figure is 400): 0 duplicate serials, one certificate and one secure-boot key per
  board even when both processes are asked for the same board's key at once (the per-board lock
  is a PostgreSQL advisory lock), the audit chain and its checkpoints verified offline
  (``nusec audit export``/``verify``), and every refusal the clients provoked is in the log —
  one row each, or counted in a ``refusals-suppressed`` row.
- A step ``detail`` holding ``\\u0000`` is a 422 (it was a 500: PostgreSQL text cannot hold NUL).
- A revoked client whose ``METHOD path`` is longer than the audit column gets its 401 and its
  refusal row (cut, with the hash of the whole), where it used to be a 500 and a lost row.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import select, text

from pki import store
from pki.ca import OPERATOR_CLIENT, Issuer, Role
from pki.service.credentials import issue_client_credentials
from pki.service.db import make_engine, make_sessions, upgrade
from pki.service.server import ServiceHandle, run_in_background
from tests.service import pg
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import ICA_LABEL, Pki
from tests.service.test_schemathesis import assert_clean, prepare_zero_uid_board, run_schemathesis

NUSEC = Path(sys.executable).parent / "nusec"
BOARDS = int(os.environ.get("NUSEC_SCALE_BOARDS", "48"))
CLIENTS = 16
REFUSALS_PER_CLIENT = 3


@dataclass
class Cluster:
    url: str
    services: list[ServiceHandle]


@pytest.fixture(scope="module")
def cluster(pki_files: Pki) -> Iterator[Cluster]:
    if not pg.available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(pg.MISSING)
        pytest.skip(pg.MISSING)
    with pg.throwaway_postgres() as url:
        engine = make_engine(url)
        upgrade(engine)  # `nusec db upgrade`, once, before any service starts
        engine.dispose()
        services = [
            run_in_background(pki_files.config(db_url=url), env=pki_files.token.environ()) for _ in range(2)
        ]
        try:
            yield Cluster(url, services)
        finally:
            for service in services:
                service.stop()


def _client(service: ServiceHandle, pki: Pki) -> ServiceClient:
    return ServiceClient(service.url, pki.chain_pem, pki.operator_cert, pki.operator_key, timeout=120)


def test_step_detail_with_nul_is_a_422_on_postgresql(cluster: Cluster, pki_files: Pki) -> None:
    with _client(cluster.services[0], pki_files) as op:
        board = Board()
        op.register(board.uid_hex)
        response = op.post(f"/v1/boards/{board.uid_hex}/steps", {"step": "ca_written", "detail": "a\u0000b"})
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("/invalid-request")


def test_audit_paging_past_the_integer_column_is_a_422_on_postgresql(
    cluster: Cluster, pki_files: Pki
) -> None:
    """Found by the schemathesis run on PostgreSQL: ``after=2**62`` overflowed the int4 ``seq``."""
    with ServiceClient(
        cluster.services[0].url, pki_files.chain_pem, pki_files.admin_cert, pki_files.admin_key
    ) as a:
        for path in ("/v1/audit", "/v1/audit/checkpoints"):
            assert a.http.get(path, params={"after": 2**62}).status_code == 422
            assert a.http.get(path, params={"after": 2**31 - 1}).status_code == 200


def test_revoked_client_with_a_long_path_is_refused_and_audited_on_postgresql(
    cluster: Cluster, pki_files: Pki
) -> None:
    engine = make_engine(cluster.url)
    sessions = make_sessions(engine)
    ica_cert = x509.load_pem_x509_certificate(pki_files.ica_pem.read_bytes())
    root_cert = x509.load_pem_x509_certificate(pki_files.root_pem.read_bytes())
    with pki_files.token.open_backend() as backend, sessions() as session:

        def record(cert: x509.Certificate) -> None:
            store.record_certificate(session, cert, OPERATOR_CLIENT.name)

        creds = issue_client_credentials(
            Issuer(backend, ICA_LABEL, ica_cert), root_cert, pki_files.dir / "pg-revoked",
            name="revoked-rita", role=Role.OPERATOR, stem="rita", on_issued=record,
        )  # fmt: skip
        assert creds.certificate is not None
        store.revoke_certificate(session, creds.certificate.serial_number)
        session.commit()
    path = "/v1/" + "r" * 4000
    with ServiceClient(cluster.services[1].url, pki_files.chain_pem, creds.cert, creds.key) as rita:
        response = rita.http.get(path)
    assert response.status_code == 401 and response.json()["type"].endswith("/client-certificate-revoked")
    with sessions() as session:
        rows = session.execute(
            text("SELECT action, detail FROM svc_audit WHERE actor = 'revoked-rita' ORDER BY seq")
        ).all()
    engine.dispose()
    assert len(rows) == 1, rows
    action, detail = rows[0]
    assert len(action) <= 64 and action.startswith("GET /v1/rrr")
    assert json.loads(detail)["action_sha256"] == hashlib.sha256(f"GET {path}".encode()).hexdigest()


def test_two_processes_certify_boards_across_one_database(
    cluster: Cluster, pki_files: Pki, tmp_path: Path
) -> None:
    boards = [Board() for _ in range(BOARDS)]
    created: list[str] = []
    refusals_sent = 0
    lock = threading.Lock()
    started = time.monotonic()

    def work(index: int) -> None:
        nonlocal refusals_sent
        mine = boards[index::CLIENTS]
        with (
            _client(cluster.services[index % 2], pki_files) as near,
            _client(cluster.services[(index + 1) % 2], pki_files) as far,
        ):
            for board in mine:
                near.register(board.uid_hex)
                far.certify(board.uid_hex, board.csr_pem())  # the other process certifies
                near.certify(board.uid_hex, board.csr_pem())  # same CSR again: same certificate

                def make_key(client: ServiceClient, uid: str = board.uid_hex) -> dict[str, Any]:
                    return client.secure_boot_key(uid)

                with ThreadPoolExecutor(2) as both:  # both processes asked for the key at once
                    answers = list(both.map(make_key, (near, far)))
                assert answers[0]["public_key_pem"] == answers[1]["public_key_pem"]
                with lock:
                    created.extend(board.uid_hex for a in answers if a["created"])
            for _ in range(REFUSALS_PER_CLIENT):
                assert near.http.get("/v1/audit").status_code == 403  # an operator: refused, audited
                with lock:
                    refusals_sent += 1

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(work, range(CLIENTS)))
    elapsed = time.monotonic() - started
    rate = BOARDS / elapsed
    print(f"\n{BOARDS} boards, {CLIENTS} clients, 2 processes: {elapsed:.1f} s ({rate:.1f} boards/s)")

    assert sorted(created) == sorted(b.uid_hex for b in boards)  # one key per board, made once
    export = tmp_path / "audit.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUSEC_")}
    exported = subprocess.run(
        [str(NUSEC), "audit", "export", "--server", cluster.services[0].url, "--ca", str(pki_files.chain_pem),
         "--client-cert", str(pki_files.admin_cert), "--client-key", str(pki_files.admin_key),
         "--out", str(export)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    verified = subprocess.run(
        [str(NUSEC), "audit", "verify", str(export), "--ica-cert", str(pki_files.ica_pem), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["restarts"] >= 1  # the second process's start checkpoint

    for service in cluster.services:  # a stop writes the refusal counts still pending
        service.stop()
    engine = make_engine(cluster.url)
    with make_sessions(engine)() as session:
        serials = session.scalars(select(store.IssuedCertificate.serial)).all()
        per_board = session.execute(
            text(
                "SELECT b.uid, COUNT(c.id) FROM pki_board b LEFT JOIN pki_certificate c ON c.board_id = b.id "
                "GROUP BY b.uid"
            )
        ).all()
        sb_keys = session.execute(text("SELECT COUNT(DISTINCT sb_key_label), COUNT(*) FROM svc_board")).one()
        refused = session.execute(
            text("SELECT action, detail FROM svc_audit WHERE actor = 'alice' AND outcome = 'refused'")
        ).all()
    engine.dispose()
    assert len(serials) == len(set(serials))  # 0 duplicate serials
    counts = {uid.upper(): n for uid, n in per_board}
    assert all(counts[b.uid_hex.upper()] == 1 for b in boards)  # one certificate per board
    assert sb_keys[0] >= BOARDS
    with pki_files.token.open_backend() as backend:
        labels = [label for label in backend.list_labels() if label.startswith("nusec-sb-")]
    assert len(labels) == len(set(labels)) and {f"nusec-sb-{b.uid_hex.upper()}" for b in boards} <= set(
        labels
    )
    singles = sum(1 for action, _ in refused if action == "GET /v1/audit")
    counted = sum(json.loads(d)["count"] for action, d in refused if action == "refusals-suppressed")
    assert singles + counted == refusals_sent, (singles, counted, refusals_sent)  # no refusal lost


def test_schemathesis_finds_no_server_errors_on_postgresql(
    cluster: Cluster, pki_files: Pki, tmp_path: Path
) -> None:
    """The schemathesis run of ``test_schemathesis.py``, against a service on PostgreSQL (small
    by default here; ``NUSEC_SCHEMATHESIS_EXAMPLES=300`` for the long run)."""
    examples = int(os.environ.get("NUSEC_SCHEMATHESIS_EXAMPLES", "5"))
    service = run_in_background(pki_files.config(db_url=cluster.url), env=pki_files.token.environ())
    try:
        with ServiceClient(
            service.url, pki_files.chain_pem, pki_files.admin_cert, pki_files.admin_key
        ) as admin:
            prepare_zero_uid_board(admin)
        result = run_schemathesis(service.url, pki_files, tmp_path, examples)
        print(result.stdout.split("SUMMARY")[-1][-1500:])
        assert_clean(result)
    finally:
        service.stop()
