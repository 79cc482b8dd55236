"""``nusec board`` against the live service: an admin re-issues, grants and resets with a reason;
a refusal is exit 4 with the problem; bad input is exit 1 with one error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from pki.service.schemas import BoardState
from pki.service.server import ServiceHandle
from tests.service.board_driver import drive_to
from tests.service.client import ServiceClient
from tests.service.conftest import Pki

NUSEC = Path(sys.executable).with_name("nusec")


def board_cli(
    service: ServiceHandle, pki: Pki, *args: str, admin: bool = True
) -> subprocess.CompletedProcess[str]:
    cert, key = (pki.admin_cert, pki.admin_key) if admin else (pki.operator_cert, pki.operator_key)
    tls = [
        "--server",
        service.url,
        "--ca",
        str(pki.chain_pem),
        "--client-cert",
        str(cert),
        "--client-key",
        str(key),
    ]
    return subprocess.run(
        [str(NUSEC), "board", *args, *tls, "--json"], capture_output=True, text=True, timeout=120, check=False
    )


def _last(res: subprocess.CompletedProcess[str]) -> dict[str, object]:
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert isinstance(doc, dict)
    return doc


def test_admin_board_commands_with_reasons(
    service: ServiceHandle, pki_files: Pki, operator: ServiceClient, admin: ServiceClient, tmp_path: Path
) -> None:
    run = drive_to(BoardState.CERTIFIED, operator, admin)
    run.board.identity = ec.generate_private_key(ec.SECP256R1())
    csr = tmp_path / "new.csr.pem"
    csr.write_text(run.board.csr_pem())
    out = tmp_path / "new.pem"
    res = board_cli(
        service, pki_files, "reissue", run.uid, "--csr", str(csr), "--reason", "power cut", "--out", str(out)
    )
    assert res.returncode == 0, res.stderr
    assert (
        _last(res)["serial"] == operator.certificate(run.uid)["serial"]
        and "BEGIN CERTIFICATE" in out.read_text()
    )

    res = board_cli(service, pki_files, "grant", run.uid, "--operator", "dave", "--reason", "line 2")
    assert res.returncode == 0 and _last(res)["operator"] == "dave", res.stderr
    res = board_cli(service, pki_files, "reset-key-agreement", run.uid, "--reason", "reflashed")
    assert res.returncode == 0 and _last(res)["state"] == "certified", res.stderr
    res = board_cli(service, pki_files, "status", run.uid, admin=False)
    assert res.returncode == 0 and _last(res)["owner"] == "alice", res.stderr
    actions = [e["action"] for e in admin.all_audit_entries() if e["subject"] == run.uid.upper()]
    assert {"reissue", "grant", "key-agreement-reset"} <= set(actions)


def test_refusals_and_bad_input(
    service: ServiceHandle, pki_files: Pki, operator: ServiceClient, admin: ServiceClient
) -> None:
    run = drive_to(BoardState.SECURE_BOOT_KEY, operator, admin)
    res = board_cli(service, pki_files, "reset-key-agreement", run.uid, "--reason", "x" * 10, admin=False)
    assert res.returncode == 4 and "role-forbidden" in res.stderr
    assert _last(res)["status"] == 403
    res = board_cli(service, pki_files, "grant", "not-a-uid", "--operator", "dave", "--reason", "why not")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1  # usage (docs/exit-codes.md)
    assert res.stderr == "error: UID 'not-a-uid' is not 24 hex digits\n"
    res = board_cli(
        service, pki_files, "reissue", run.uid, "--csr", "/nonexistent.pem", "--reason", "missing"
    )
    assert res.returncode == 1 and "nonexistent" in res.stderr
