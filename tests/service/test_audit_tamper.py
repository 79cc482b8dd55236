"""Defects 6 and 7 against the live service: a tamper-evident, bounded audit log.

6. Rewriting rows and recomputing every later hash used to leave ``/v1/audit/verify`` saying
   "chain intact"; rows cut from the end went unseen; the actor was a CN only. Now checkpoints
   signed by the ICA key in the HSM catch both, checked offline by ``nusec audit verify`` with
   the ICA certificate alone; the actor carries the client certificate's SHA-256.
7. Refusals that were never audited (403 no-role, 404, 405, 413, 415, 422, 500) are, each as one
   bounded row; a client that keeps failing is rate-limited (one summary row counts the rest);
   the server log holds request ids and error classes, never bodies, SQL parameters or
   tracebacks.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.service.audit import _hashed_fields, _row_digest
from pki.service.server import ServiceHandle, run_in_background
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import Pki
from tests.service.firmware_util import cortex_m_firmware

NUSEC = Path(sys.executable).parent / "nusec"
REFUSALS_PER_MINUTE = 8
INTERVAL_S = 1.0


def _db(pki: Pki) -> Path:
    return pki.dir / "audit.db"


def _start(pki: Pki) -> ServiceHandle:
    config = pki.config(
        db_url=f"sqlite:///{_db(pki)}",
        audit_checkpoint_rows=8,
        audit_checkpoint_interval=INTERVAL_S,
        refusals_per_minute=REFUSALS_PER_MINUTE,
    )
    return run_in_background(config, env=pki.token.environ(), migrate=True)


@pytest.fixture(scope="module")
def svc(pki_files: Pki) -> Iterator[ServiceHandle]:
    handle = _start(pki_files)
    try:
        yield handle
    finally:
        handle.stop()


def _client(svc: ServiceHandle, pki: Pki, who: str = "admin") -> ServiceClient:
    if who == "admin":
        return ServiceClient(svc.url, pki.chain_pem, pki.admin_cert, pki.admin_key)
    return ServiceClient(svc.url, pki.chain_pem, pki.operator_cert, pki.operator_key)


def _export(svc: ServiceHandle, pki: Pki, out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUSEC_")}
    return subprocess.run(
        [str(NUSEC), "audit", "export", "--server", svc.url, "--ca", str(pki.chain_pem),
         "--client-cert", str(pki.admin_cert), "--client-key", str(pki.admin_key), "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def _verify(pki: Pki, export: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NUSEC), "audit", "verify", str(export), "--ica-cert", str(pki.ica_pem),
         "--root-cert", str(pki.root_pem), *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _activity(svc: ServiceHandle, pki: Pki, boards: int = 3) -> None:
    with _client(svc, pki, "operator") as op:
        for _ in range(boards):
            board = Board()
            op.register(board.uid_hex)
            op.certify(board.uid_hex, board.csr_pem())


def _rewrite_from(db: sqlite3.Connection, seq: int, actor: str) -> None:
    """Change row ``seq``'s actor and recompute every later hash, as an insider with SQL would."""
    db.execute("UPDATE svc_audit SET actor = ? WHERE seq = ?", (actor, seq))
    prev = db.execute("SELECT row_hash FROM svc_audit WHERE seq = ?", (seq - 1,)).fetchone()[0]
    names = ("seq", "at", "actor", "role", "action", "subject", "outcome", "detail", "actor_cert")
    rows = db.execute(
        f"SELECT {', '.join(names)} FROM svc_audit WHERE seq >= ? ORDER BY seq", (seq,)
    ).fetchall()
    for values in rows:
        row: dict[str, Any] = dict(zip(names, values, strict=True))
        digest = _row_digest(prev, _hashed_fields(row))
        db.execute(
            "UPDATE svc_audit SET prev_hash = ?, row_hash = ? WHERE seq = ?", (prev, digest, row["seq"])
        )
        prev = digest
    db.commit()


def test_export_verifies_and_the_actor_is_the_certificate(
    svc: ServiceHandle, pki_files: Pki, tmp_path: Path
) -> None:
    _activity(svc, pki_files)
    out = tmp_path / "audit.json"
    assert _export(svc, pki_files, out).returncode == 0
    result = _verify(pki_files, out)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    alice = x509.load_pem_x509_certificate(pki_files.operator_cert.read_bytes())
    alice_sha = hashlib.sha256(alice.public_bytes(serialization.Encoding.DER)).hexdigest()
    certify = [r for r in doc["rows"] if r["action"] == "certify"]
    assert certify and all(r["actor"] == "alice" and r["actor_cert"] == alice_sha for r in certify)
    kinds = {cp["kind"] for cp in doc["checkpoints"]}
    assert {"start", "request"} <= kinds


def test_rewritten_rows_with_recomputed_hashes_are_detected(
    svc: ServiceHandle, pki_files: Pki, admin_of_svc: ServiceClient, tmp_path: Path
) -> None:
    _activity(svc, pki_files)
    time.sleep(INTERVAL_S * 2)  # heartbeats cover the rows
    with sqlite3.connect(_db(pki_files)) as db:
        (target,) = db.execute("SELECT MAX(seq) - 3 FROM svc_audit").fetchone()
        _rewrite_from(db, target, "mallory")
    assert admin_of_svc.audit_verify().json()["ok"] is True  # the unkeyed chain is fooled ...
    live = _export(svc, pki_files, tmp_path / "live.json")
    assert live.returncode == 1  # ... the running service is not
    assert "changed" in live.stderr or "gone" in live.stderr, live.stderr


def test_an_export_of_a_rewritten_log_fails_offline(pki_files: Pki, tmp_path: Path) -> None:
    """After a restart the service no longer remembers its head; the checkpoints still catch it."""
    restarted = _start(pki_files)
    try:
        out = tmp_path / "after-restart.json"
        result = _export(restarted, pki_files, out)
        assert result.returncode == 0, result.stderr
        verdict = _verify(pki_files, out)
        assert verdict.returncode == 3, verdict.stdout + verdict.stderr
        assert "rows rewritten" in verdict.stderr
    finally:
        restarted.stop()


@pytest.fixture
def fresh_service(pki_files: Pki, tmp_path: Path) -> Iterator[ServiceHandle]:
    """A service on a database of its own (the shared one was tampered with above)."""
    config = pki_files.config(
        db_url=f"sqlite:///{tmp_path / 'cut.db'}", audit_checkpoint_rows=1000, audit_checkpoint_interval=60
    )
    handle = run_in_background(config, env=pki_files.token.environ(), migrate=True)
    try:
        yield handle
    finally:
        handle.stop()


def test_rows_cut_after_the_last_checkpoint_are_detected(
    fresh_service: ServiceHandle, pki_files: Pki, tmp_path: Path
) -> None:
    before = tmp_path / "before.json"
    assert _export(fresh_service, pki_files, before).returncode == 0  # an earlier export, kept
    _activity(fresh_service, pki_files, boards=2)  # rows after the last checkpoint
    db_path = Path(str(fresh_service.config.db_url).removeprefix("sqlite:///"))
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM svc_audit WHERE seq > (SELECT MAX(seq) - 2 FROM svc_audit)")
        db.commit()
    live = _export(fresh_service, pki_files, tmp_path / "live.json")
    assert live.returncode == 1 and "gone" in live.stderr, live.stderr  # the service remembers its head

    # An insider who also cuts the checkpoints and restarts the service: an earlier export catches it.
    fresh_service.stop()
    with sqlite3.connect(db_path) as db:
        (kept,) = db.execute("SELECT COUNT(*) FROM svc_audit").fetchone()
        db.execute("DELETE FROM svc_audit WHERE seq > ?", (kept - 4,))
        db.execute("DELETE FROM svc_audit_checkpoint WHERE seq > ?", (kept - 4,))
        db.commit()
    restarted = run_in_background(fresh_service.config, env=pki_files.token.environ(), migrate=True)
    try:
        after = tmp_path / "after.json"
        assert _export(restarted, pki_files, after).returncode == 0
        verdict = _verify(pki_files, after, "--previous", str(before))
        assert verdict.returncode == 3 and "previous export" in verdict.stderr, verdict.stderr
    finally:
        restarted.stop()


@pytest.fixture(scope="module")
def admin_of_svc(svc: ServiceHandle, pki_files: Pki) -> Iterator[ServiceClient]:
    with _client(svc, pki_files) as c:
        yield c


# --- defect 7: every refusal audited, bounded, rate-limited; logs without request data ---------------


def _rows(pki: Pki, after: int) -> list[dict[str, Any]]:
    with sqlite3.connect(_db(pki)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM svc_audit WHERE seq > ? ORDER BY seq", (after,))]


def _head(pki: Pki) -> int:
    with sqlite3.connect(_db(pki)) as db:
        return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM svc_audit").fetchone()[0])


def test_every_kind_of_refusal_is_one_bounded_row(svc: ServiceHandle, pki_files: Pki, tmp_path: Path) -> None:
    # a client certificate without a role: a board identity certificate of this CA
    board = Board()
    with _client(svc, pki_files, "operator") as op:
        op.register(board.uid_hex)
        (tmp_path / "board.pem").write_text(op.certify(board.uid_hex, board.csr_pem())["certificate_pem"])
    (tmp_path / "board.key").write_bytes(
        board.identity.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    start = _head(pki_files)
    long_path = "/v1/" + "x" * 3000
    with _client(svc, pki_files) as admin:
        sent = [
            admin.http.get(long_path),  # 404
            admin.http.put("/v1/boards", json={}),  # 405
            admin.http.post(f"/v1/boards/{Board().uid_hex}/steps", json={"step": "locked"}),  # 404
            admin.http.post("/v1/boards", json={"uid": "zz"}),  # 422
            admin.sign_firmware(board.uid_hex, b"\0" * (400 * 1024)),  # 413
            admin.http.post(
                f"/v1/boards/{board.uid_hex}/firmware", content=b"x", headers={"Content-Type": "text/plain"}
            ),
        ]
    with ServiceClient(
        svc.url, pki_files.chain_pem, tmp_path / "board.pem", tmp_path / "board.key"
    ) as as_board:
        sent.append(as_board.http.get("/v1/ca/chain"))  # 403 no-role
    statuses = [r.status_code for r in sent]
    assert statuses == [404, 405, 404, 422, 413, 415, 403], statuses
    rows = [r for r in _rows(pki_files, start) if r["outcome"] == "refused"]
    by_status: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_status.setdefault(json.loads(row["detail"]).get("status"), []).append(row)
    for status in set(statuses):
        assert status in by_status, (status, [r["action"] for r in rows])
    assert len(rows) == len(sent), [r["action"] for r in rows]  # one row each, no duplicates
    long_row = next(r for r in rows if r["action"].startswith("GET /v1/xxx"))
    assert len(long_row["action"]) <= 64
    assert (
        json.loads(long_row["detail"])["action_sha256"]
        == hashlib.sha256(f"GET {long_path}".encode()).hexdigest()
    )
    assert all(len(r["detail"]) < 2000 for r in rows)
    no_role = by_status[403][0]
    assert no_role["actor"] == board.uid_hex.upper() and json.loads(no_role["detail"])["problem"] == "no-role"


def test_a_client_that_keeps_failing_is_rate_limited_with_a_count(svc: ServiceHandle, pki_files: Pki) -> None:
    start = _head(pki_files)
    with _client(svc, pki_files, "operator") as op:
        for _ in range(40):
            assert op.http.get("/v1/audit").status_code == 403  # role-forbidden, each time
    rows = [r for r in _rows(pki_files, start) if r["actor"] == "alice" and r["outcome"] == "refused"]
    assert len(rows) == REFUSALS_PER_MINUTE, len(rows)


def test_suppressed_refusals_are_counted_at_shutdown(pki_files: Pki, tmp_path: Path) -> None:
    db_path = tmp_path / "limits.db"
    config = pki_files.config(db_url=f"sqlite:///{db_path}", refusals_per_minute=3)
    handle = run_in_background(config, env=pki_files.token.environ(), migrate=True)
    try:
        with ServiceClient(
            handle.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
        ) as op:
            for _ in range(25):
                op.http.get("/v1/audit")
    finally:
        handle.stop()
    with sqlite3.connect(db_path) as db:
        refused = db.execute("SELECT action, detail FROM svc_audit WHERE outcome = 'refused'").fetchall()
    singles = [a for a, _ in refused if a == "GET /v1/audit"]
    counted = sum(json.loads(d)["count"] for a, d in refused if a == "refusals-suppressed")
    assert len(singles) == 3 and len(singles) + counted == 25, refused


def test_server_log_has_request_ids_and_classes_never_request_data(pki_files: Pki, tmp_path: Path) -> None:
    marker = "SECRET-MARKER-" + uuid.uuid4().hex
    db_path = tmp_path / "logs.db"
    handle = run_in_background(
        pki_files.config(db_url=f"sqlite:///{db_path}"), env=pki_files.token.environ(), migrate=True
    )
    try:
        with sqlite3.connect(db_path) as db:  # a database fault whose statement carries the marker
            db.execute(
                "CREATE TRIGGER boom BEFORE INSERT ON svc_board_step WHEN NEW.detail LIKE '%MARKER%' "
                "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
            )
        with ServiceClient(
            handle.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
        ) as op:
            board = Board()
            op.register(board.uid_hex)
            failed = op.post(f"/v1/boards/{board.uid_hex}/steps", {"step": "ca_written", "detail": marker})
            assert failed.status_code == 500 and failed.json()["type"].endswith("/internal")
            request_id = failed.headers["x-request-id"]
            op.post("/v1/boards", {"uid": marker})  # 422: the marker is in the body
            op.post(f"/v1/boards/{board.uid_hex}/certificate", {"csr_pem": marker})
            op.sign_firmware(board.uid_hex, marker.encode() + cortex_m_firmware())
        assert handle.log_path is not None
        log = handle.log_path.read_text()
    finally:
        handle.stop()
    assert request_id in log and "IntegrityError" in log, log[-3000:]
    assert marker not in log and "MARKER" not in log
    assert "Traceback" not in log
    with sqlite3.connect(db_path) as db:
        details = [d for (d,) in db.execute("SELECT detail FROM svc_audit WHERE outcome = 'refused'")]
    assert any(json.loads(d).get("status") == 500 for d in details)  # the 500 is audited too
