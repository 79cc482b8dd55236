"""Sign a to-be-signed structure (certificate, CRL or CSR) with an HSM key, outside ``cryptography``.

Why: ``cryptography`` signs only with keys it holds. We let it build and DER-encode the TBS with
a throwaway key (that copy is what gets linted first), then hash the TBS with SHA-256 here,
have the HSM sign the digest (CKM_ECDSA), and reassemble ``SEQUENCE { tbs, algorithm,
BIT STRING signature }``. The TBS bytes are identical, so the linted copy and the real
certificate differ only in the signature.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, ClassVar

from asn1crypto import algos, core
from cryptography.hazmat.primitives.asymmetric import ec

if TYPE_CHECKING:
    from pki.hsm.backend import KeyBackend


class _Signed(core.Sequence):  # type: ignore[misc]  # asn1crypto has no types
    """The outer shape shared by Certificate, CertificateList and CertificationRequest."""

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("tbs", core.Any),
        ("signature_algorithm", algos.SignedDigestAlgorithm),
        ("signature", core.OctetBitString),
    ]


def assemble_signed(tbs_der: bytes, signature_der: bytes) -> bytes:
    """DER of ``SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature }`` (asn1crypto encodes
    it): the one assembly of certificates, CRLs and CSRs."""
    signed = _Signed(
        {
            "tbs": core.Any.load(tbs_der),
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": signature_der,
        }
    )
    return bytes(signed.dump())


def sign_tbs(backend: KeyBackend, key_label: str, tbs_der: bytes) -> bytes:
    """SHA-256 the TBS here, sign the digest in the HSM; DER ECDSA signature."""
    return backend.sign_digest(key_label, hashlib.sha256(tbs_der).digest())


def throwaway_signing_key() -> ec.EllipticCurvePrivateKey:
    """A fresh in-memory P-256 key used only to let ``cryptography`` encode a TBS for linting."""
    return ec.generate_private_key(ec.SECP256R1())
