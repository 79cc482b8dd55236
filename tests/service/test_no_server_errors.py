"""Defect 4 against the live service: inputs that used to end in ``500 internal`` get a 4xx
problem document instead, and every slug the code can answer is listed in docs/service-api.md.

(The two PostgreSQL-only 500s — a step ``detail`` holding ``\\u0000``, a revoked client's long
``METHOD path`` — are in ``test_postgres_scale.py``, which runs a real PostgreSQL server.)
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.ca import build_csr
from pki.ca.signing import assemble_signed
from tests.service.board import Board
from tests.service.client import ServiceClient

REPO = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"].endswith("/" + slug), response.text


def csr_with_invalid_utf8_cn(board: Board) -> str:
    """A CSR correctly signed by the board key whose subject CN is a UTF8String of invalid UTF-8."""
    from cryptography import x509

    placeholder = "Q" * 24
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, board.uid_hex.upper()),
            x509.NameAttribute(NameOID.COMMON_NAME, placeholder),
        ]
    )
    csr = build_csr(board.identity, subject)
    tbs = csr.tbs_certrequest_bytes
    assert tbs.count(placeholder.encode()) == 1
    tbs = tbs.replace(placeholder.encode(), b"\xff\xfe" * 12)  # same length, not UTF-8
    signature = board.identity.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = assemble_signed(tbs, signature)  # CertificationRequest has the shape of a certificate
    from cryptography.x509 import load_der_x509_csr

    load_der_x509_csr(der)  # parses (the CN is only decoded when read)
    import base64

    b64 = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{b64}-----END CERTIFICATE REQUEST-----\n"


def test_csr_whose_cn_is_invalid_utf8_is_refused_not_a_500(operator: ServiceClient) -> None:
    board = Board()
    operator.register(board.uid_hex)
    response = operator.post(
        f"/v1/boards/{board.uid_hex}/certificate", {"csr_pem": csr_with_invalid_utf8_cn(board)}
    )
    _problem(response, 422, "csr-refused")


def test_odd_length_hex_seal_signature_is_refused_not_a_500(operator: ServiceClient) -> None:
    board = Board()
    operator.register(board.uid_hex)
    operator.certify(board.uid_hex, board.csr_pem())
    body = {
        "batch_json": "{}",
        "seal": {"statement": {}, "signature": "3" * 71},
        "line": "{}",
        "path": [],
    }
    response = operator.post(f"/v1/boards/{board.uid_hex}/secure-boot-key/import", body)
    assert response.status_code < 500, response.text
    _problem(response, 422, "invalid-request")


def test_step_detail_with_control_characters_is_refused(operator: ServiceClient) -> None:
    board = Board()
    operator.register(board.uid_hex)
    response = operator.post(
        f"/v1/boards/{board.uid_hex}/steps", {"step": "ca_written", "detail": "a\u0000b"}
    )
    _problem(response, 422, "invalid-request")


# --- every slug documented -------------------------------------------------------------------------

#: ``Problem(409, "slug", ...)`` and the batch checks' ``_bad("slug", ...)`` helper.
SLUG_IN_CODE = re.compile(r"""(?:Problem|_bad)\(\s*(?:\d{3},\s*)?f?["']([a-z0-9-]+)["']""", re.S)


def code_slugs() -> set[str]:
    """Every problem slug the service can answer, read from its source (and the board state
    table's refusals, which are data)."""
    from pki.service.board_states import REFUSALS

    slugs: set[str] = set(REFUSALS)
    for path in (REPO / "pki" / "service").rglob("*.py"):
        slugs |= set(SLUG_IN_CODE.findall(path.read_text()))
    slugs |= {f"http-{status}" for status in (404, 405)}  # problems.py builds these from the status
    return slugs


def test_every_problem_slug_is_documented() -> None:
    slugs = code_slugs()
    assert len(slugs) > 30, slugs  # the scan works
    doc = (REPO / "docs" / "service-api.md").read_text()
    documented = set(re.findall(r"`([a-z0-9-]+)`", doc))
    missing = sorted(slugs - documented)
    assert not missing, f"problem slugs missing from docs/service-api.md: {missing}"
