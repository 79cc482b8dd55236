"""The OEM certificate authority: profiles, issuance via an HSM ``KeyBackend``, CSR policy, CRLs, lint.

Public API (stable; import from ``pki.ca``)::

    Issuer(backend: KeyBackend, key_label: str, certificate: x509.Certificate)   .check() -> Issuer
    create_root_certificate(backend, key_label, subject, *, validity=None, not_before=None) -> Certificate
    issue_ica_certificate(root: Issuer, ica_public_key, subject, *, validity=None) -> Certificate
    issue_board_certificate(ica: Issuer, uid: bytes, public_key, *, organization=None, serial=None)
    issue_board_certificate_from_csr(ica: Issuer, csr: bytes | str | CSR, expected_uid: bytes,
                                     *, organization=None) -> Certificate
    issue_server_certificate(ica, public_key, *, common_name, dns_names=(), ip_addresses=(), validity=None)
    issue_operator_certificate(ica, public_key, *, name, role: Role, organization=None, validity=None)
    issue_certificate(*, backend, key_label, issuer_certificate, profile, subject, public_key,
                      san=(), not_before=None, not_after=None, serial=None)   # generic
    issue_crl(issuer: Issuer, revoked: Iterable[RevokedEntry], *, crl_number, this_update=None,
              next_update=timedelta(days=7)) -> CertificateRevocationList
    check_board_csr(csr, expected_uid) -> EllipticCurvePublicKey    # raises Csr*Error
    load_csr(data) / build_csr(private_key, subject, extensions=()) / build_board_csr(private_key, uid)
    board_csr_info(uid, public_key) -> bytes ; assemble_csr(info_der, signature_der) -> bytes
    lint_certificate(cert) / require_clean_certificate(cert) / lint_crl / require_clean_crl
    profiles: ROOT_CA, ICA, BOARD_IDENTITY, SERVICE_TLS_SERVER, OPERATOR_CLIENT, PROFILES, Role,
              board_subject(uid), operator_subject(name, role), uid_from_name(name),
              role_from_certificate(cert), uid_hex(uid), random_serial()

Every issuance lints a throwaway-key copy with pkilint before the HSM signs, verifies the HSM
signature, and lints the result; errors are ``pki.errors.CaError`` subclasses.
"""

from __future__ import annotations

from cryptography import x509

from pki.ca.crl import RevokedEntry, issue_crl
from pki.ca.csr import (
    ALLOWED_CSR_EXTENSIONS,
    assemble_csr,
    board_csr_info,
    build_board_csr,
    build_csr,
    check_board_csr,
    load_csr,
)
from pki.ca.issue import (
    Issuer,
    create_root_certificate,
    issue_board_certificate,
    issue_certificate,
    issue_ica_certificate,
    issue_operator_certificate,
    issue_server_certificate,
    random_serial,
)
from pki.ca.lint import Finding, lint_certificate, lint_crl, require_clean_certificate, require_clean_crl
from pki.ca.profiles import (
    BOARD_IDENTITY,
    ICA,
    OPERATOR_CLIENT,
    PROFILES,
    ROOT_CA,
    SERVICE_TLS_SERVER,
    CertProfile,
    Role,
    board_subject,
    operator_subject,
    role_from_certificate,
    uid_from_name,
    uid_hex,
)


def issue_board_certificate_from_csr(
    ica: Issuer,
    csr: x509.CertificateSigningRequest | bytes | str,
    expected_uid: bytes,
    *,
    organization: str | None = None,
) -> x509.Certificate:
    """Apply the board CSR policy (``check_board_csr``) then issue the board certificate."""
    public_key = check_board_csr(csr, expected_uid)
    return issue_board_certificate(ica, expected_uid, public_key, organization=organization)


__all__ = [
    "ALLOWED_CSR_EXTENSIONS",
    "BOARD_IDENTITY",
    "ICA",
    "OPERATOR_CLIENT",
    "PROFILES",
    "ROOT_CA",
    "SERVICE_TLS_SERVER",
    "CertProfile",
    "Finding",
    "Issuer",
    "RevokedEntry",
    "Role",
    "assemble_csr",
    "board_csr_info",
    "board_subject",
    "build_board_csr",
    "build_csr",
    "check_board_csr",
    "create_root_certificate",
    "issue_board_certificate",
    "issue_board_certificate_from_csr",
    "issue_certificate",
    "issue_crl",
    "issue_ica_certificate",
    "issue_operator_certificate",
    "issue_server_certificate",
    "lint_certificate",
    "lint_crl",
    "load_csr",
    "operator_subject",
    "random_serial",
    "require_clean_certificate",
    "require_clean_crl",
    "role_from_certificate",
    "uid_from_name",
    "uid_hex",
]
