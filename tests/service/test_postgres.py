"""The service on PostgreSQL: a throwaway cluster (initdb + pg_ctl on a private socket dir and
port), Alembic migrations to head, then the provisioning endpoints and the audit chain over
HTTPS + mTLS. Skips (naming what is missing) only where the PostgreSQL server binaries are not
installed; the SQLite tests cover the same code paths everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pki.service.server import run_in_background
from tests.service import pg
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import Pki
from tests.service.firmware_util import cortex_m_firmware, imgtool_verify


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if not pg.available():
        # scripts/bootstrap installs them; under CI a missing server is a failure, not a skip.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(pg.MISSING)
        pytest.skip(pg.MISSING)
    with pg.throwaway_postgres() as url:
        yield url


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
