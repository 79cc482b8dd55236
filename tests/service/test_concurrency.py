"""8 concurrent mTLS clients register and certify 200 boards: no duplicate serials, no lost
records, every certificate verifies with ``openssl verify`` (one batched call)."""

from __future__ import annotations

import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509

from pki.service.server import ServiceHandle
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import Pki

CLIENTS = 8
BOARDS = 200


def _worker(url: str, pki: Pki, boards: list[Board]) -> list[tuple[str, str, str]]:
    out = []
    with ServiceClient(url, pki.chain_pem, pki.operator_cert, pki.operator_key) as client:
        for board in boards:
            client.register(board.uid_hex)
            issued = client.certify(board.uid_hex, board.csr_pem())
            out.append((board.uid_hex.upper(), issued["serial"], issued["certificate_pem"]))
    return out


def test_eight_clients_certify_200_boards(
    service: ServiceHandle, pki_files: Pki, admin: ServiceClient, tmp_path: Path
) -> None:
    boards = [Board() for _ in range(BOARDS)]
    shares = [boards[i::CLIENTS] for i in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [r for part in pool.map(lambda s: _worker(service.url, pki_files, s), shares) for r in part]

    assert len(results) == BOARDS
    serials = [serial for _, serial, _ in results]
    assert len(set(serials)) == BOARDS, "duplicate serial numbers"
    for uid, serial, pem in results:
        cert = x509.load_pem_x509_certificate(pem.encode())
        assert format(cert.serial_number, "x") == serial and uid in cert.subject.rfc4514_string()

    # No lost records: the service tables and the CA store hold every board and certificate.
    db = sqlite3.connect(pki_files.dir / "service.db")
    try:
        uids = {uid for uid, _, _ in results}
        rows = dict(db.execute("SELECT uid, cert_serial FROM svc_board WHERE state = 'certified'").fetchall())
        assert uids <= set(rows) and all(rows[u] == s for u, s, _ in results)
        stored = {
            r[0] for r in db.execute("SELECT serial FROM pki_certificate WHERE profile = 'board-identity'")
        }
        assert set(serials) <= stored
    finally:
        db.close()
    assert admin.audit_verify().json()["ok"] is True

    files = []
    for i, (_, _, pem) in enumerate(results):
        path = tmp_path / f"board{i:03}.pem"
        path.write_text(pem)
        files.append(str(path))
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(pki_files.root_pem),
            "-untrusted",
            str(pki_files.ica_pem),
            *files,
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr[-2000:]
    ok_lines = [line for line in verify.stdout.splitlines() if line.endswith(": OK")]
    assert len(ok_lines) == BOARDS
