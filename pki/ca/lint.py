"""pkilint (RFC 5280 profile) run in-process on certificates and CRLs before they leave the CA.

Why: a malformed certificate signed by the real CA key cannot be taken back. The CA lints a
copy signed by a throwaway key first, then the real result; any ERROR (or FATAL) finding fails
issuance with ``LintError``. WARNING/NOTICE findings are returned for the record, not enforced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkilint import loader
from pkilint.pkix import certificate, crl, extension, name
from pkilint.validation import ValidationFindingSeverity

from pki.errors import LintError

_lock = threading.Lock()
_cert_validator: Any = None
_crl_validator: Any = None


@dataclass(frozen=True)
class Finding:
    """One pkilint finding: severity name (ERROR, WARNING, ...), code and where."""

    severity: str
    code: str
    path: str

    def __str__(self) -> str:
        return f"{self.severity} {self.code} at {self.path}"


def _validators() -> tuple[Any, Any]:
    global _cert_validator, _crl_validator
    with _lock:
        if _cert_validator is None:
            _cert_validator = certificate.create_pkix_certificate_validator_container(
                certificate.create_decoding_validators(
                    name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
                ),
                [
                    certificate.create_issuer_validator_container([]),
                    certificate.create_validity_validator_container(),
                    certificate.create_subject_validator_container([]),
                    certificate.create_extensions_validator_container([]),
                    certificate.create_spki_validator_container([]),
                ],
            )
            from pkilint import pkix

            _crl_validator = crl.create_pkix_crl_validator_container(
                [
                    pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
                    pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
                ],
                [
                    crl.create_issuer_validator_container([]),
                    crl.create_validity_validator_container([]),
                    crl.create_extensions_validator_container([]),
                ],
            )
        return _cert_validator, _crl_validator


def _findings(results: Any) -> list[Finding]:
    out: list[Finding] = []
    for result in results:
        for desc in result.finding_descriptions:
            sev = ValidationFindingSeverity(desc.finding.severity)
            out.append(Finding(sev.name, str(desc.finding.code), str(result.node.path)))
    return out


def lint_certificate(cert: x509.Certificate) -> list[Finding]:
    """All pkilint RFC 5280 findings for ``cert`` (any severity)."""
    validator, _ = _validators()
    der = cert.public_bytes(serialization.Encoding.DER)
    doc = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "certificate")
    with _lock:  # validator objects are not documented as thread-safe
        return _findings(validator.validate(doc.root))


def lint_crl(crl_obj: x509.CertificateRevocationList) -> list[Finding]:
    """All pkilint RFC 5280 findings for a CRL (any severity)."""
    _, validator = _validators()
    der = crl_obj.public_bytes(serialization.Encoding.DER)
    doc = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
    with _lock:
        return _findings(validator.validate(doc.root))


def _errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity in ("ERROR", "FATAL")]


def _require_no_errors(findings: list[Finding], what: str) -> list[Finding]:
    errors = _errors(findings)
    if errors:
        shown = "; ".join(str(e) for e in errors[:3])
        raise LintError(f"pkilint refused the {what}: {shown}", tuple(str(e) for e in errors))
    return findings


def require_clean_certificate(cert: x509.Certificate, what: str = "certificate") -> list[Finding]:
    """Raise ``LintError`` if pkilint reports any ERROR/FATAL finding; else return the findings."""
    return _require_no_errors(lint_certificate(cert), what)


def require_clean_crl(crl_obj: x509.CertificateRevocationList) -> list[Finding]:
    """Raise ``LintError`` if pkilint reports any ERROR/FATAL finding on the CRL."""
    return _require_no_errors(lint_crl(crl_obj), "CRL")
