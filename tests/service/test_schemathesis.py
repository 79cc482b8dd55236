"""schemathesis (CLI) against the live service's /openapi.json over mutual TLS: no 5xx, every
response matches the published schema, status codes, headers and content types are documented,
undeclared methods get 405 with a correct Allow header, invalid input is refused.

A board with the all-zero UID is taken to ``firmware_signed`` first, because the generators
favour that UID: so the fuzzed requests reach certificate, firmware and ECDH logic, not only 404s.
Examples per operation: ``NUSEC_SCHEMATHESIS_EXAMPLES`` (default 20 for ``make test``; the long
run uses 300, on SQLite here and on PostgreSQL in ``test_postgres_scale.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from pki.service.server import ServiceHandle
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import Pki
from tests.service.firmware_util import cortex_m_firmware

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
# Every check except two whose premise does not hold here: positive_data_acceptance expects any
# schema-valid body to succeed (a CSR that parses as a string but not as PKCS#10, a point not on
# the curve, an unregistered board are business refusals), and ensure_resource_availability guesses
# that POST /v1/boards "creates" /v1/boards/{uid}/certificate.
EXCLUDED = "positive_data_acceptance,ensure_resource_availability"
EXAMPLES = int(os.environ.get("NUSEC_SCHEMATHESIS_EXAMPLES", "20"))


def prepare_zero_uid_board(admin: ServiceClient) -> None:
    """The all-zero UID (which the generators favour) at ``firmware_signed``."""
    board = Board(uid=bytes(12), identity=ec.generate_private_key(ec.SECP256R1()))
    admin.register(board.uid_hex)
    admin.certify(board.uid_hex, board.csr_pem())
    admin.secure_boot_key(board.uid_hex)
    assert admin.sign_firmware(board.uid_hex, cortex_m_firmware()).status_code == 200


def run_schemathesis(
    url: str, pki: Pki, cwd: Path, examples: int = EXAMPLES
) -> subprocess.CompletedProcess[str]:
    """schemathesis over every operation, every phase including stateful, as the admin."""
    return subprocess.run(
        [
            SCHEMATHESIS, "run", f"{url}/openapi.json",
            "--checks", "all", "--exclude-checks", EXCLUDED,
            "--max-examples", str(examples),
            "--phases", "examples,coverage,fuzzing,stateful",
            "--request-cert", str(pki.admin_cert),
            "--request-cert-key", str(pki.admin_key),
            "--tls-verify", str(pki.chain_pem),
            "--workers", "1",
            "--seed", "20261124",
            "--no-color",
        ],
        capture_output=True, text=True, timeout=300 + 30 * examples, cwd=cwd,
    )  # fmt: skip


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failures" not in result.stdout.split("SUMMARY")[-1].lower()


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    service: ServiceHandle, pki_files: Pki, admin: ServiceClient, tmp_path: Path
) -> None:
    prepare_zero_uid_board(admin)
    result = run_schemathesis(service.url, pki_files, tmp_path)
    print(result.stdout.split("SUMMARY")[-1][-1500:])
    assert_clean(result)
