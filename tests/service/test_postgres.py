"""The service on PostgreSQL: a throwaway cluster (initdb + pg_ctl on a private socket dir and
port), Alembic migrations to head, then the provisioning endpoints and the audit chain over
HTTPS + mTLS. Skips (naming what is missing) only where the PostgreSQL server binaries are not
installed; the SQLite tests cover the same code paths everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pki.service.server import free_port, run_in_background
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import Pki
from tests.service.firmware_util import cortex_m_firmware, imgtool_verify


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(versions[-1]) if versions else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        # scripts/bootstrap installs them; under CI a missing server is a failure, not a skip.
        msg = "PostgreSQL server binaries (initdb, pg_ctl) are not installed (run scripts/bootstrap)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    # Not under pytest's tmp dir: that is private to the test user, and the server may run as another.
    base = Path(tempfile.mkdtemp(prefix="nusec-pg-"))
    data = base / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-k {data} -p {port} -h 127.0.0.1 -F"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(data / "log"), "start"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, timeout=60
        )
        shutil.rmtree(base, ignore_errors=True)


def test_service_on_postgresql(postgres_url: str, pki_files: Pki, tmp_path: Path) -> None:
    config = pki_files.config(db_url=postgres_url)
    with run_in_background(config, env=pki_files.token.environ(), migrate=True) as service:
        with ServiceClient(
            service.url, pki_files.chain_pem, pki_files.admin_cert, pki_files.admin_key
        ) as admin:
            boards = [Board() for _ in range(3)]
            serials = set()
            for board in boards:
                admin.register(board.uid_hex)
                serials.add(admin.certify(board.uid_hex, board.csr_pem())["serial"])
            assert len(serials) == 3
            sb = admin.secure_boot_key(boards[0].uid_hex)
            signed = admin.sign_firmware(boards[0].uid_hex, cortex_m_firmware())
            assert signed.status_code == 200
            assert imgtool_verify(signed.content, sb["public_key_pem"], tmp_path).returncode == 0
            assert admin.status(boards[0].uid_hex)["state"] == "firmware_signed"
            report = admin.audit_verify().json()
            assert report["ok"] is True and report["rows"] >= 8
    # a restart runs the migrations again (no-op) and sees the same data
    with run_in_background(config, env=pki_files.token.environ(), migrate=True) as service:
        with ServiceClient(
            service.url, pki_files.chain_pem, pki_files.admin_cert, pki_files.admin_key
        ) as admin:
            assert admin.certificate(boards[1].uid_hex)["serial"] in serials
