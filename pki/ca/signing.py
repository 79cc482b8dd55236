"""Sign a to-be-signed structure (certificate or CRL) with an HSM key, outside ``cryptography``.

Why: ``cryptography`` signs only with keys it holds. We let it build and DER-encode the TBS with
a throwaway key (that copy is what gets linted first), then hash the TBS with SHA-256 here,
have the HSM sign the digest (CKM_ECDSA), and reassemble ``SEQUENCE { tbs, algorithm,
BIT STRING signature }``. The TBS bytes are identical, so the linted copy and the real
certificate differ only in the signature.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec

if TYPE_CHECKING:
    from pki.hsm.backend import KeyBackend

#: DER AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), parameters absent.
ECDSA_WITH_SHA256_DER = bytes.fromhex("300a06082a8648ce3d040302")


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def assemble_signed(tbs_der: bytes, signature_der: bytes) -> bytes:
    """DER of ``SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature }``."""
    bit_string = b"\x03" + _der_length(len(signature_der) + 1) + b"\x00" + signature_der
    body = tbs_der + ECDSA_WITH_SHA256_DER + bit_string
    return b"\x30" + _der_length(len(body)) + body


def sign_tbs(backend: KeyBackend, key_label: str, tbs_der: bytes) -> bytes:
    """SHA-256 the TBS here, sign the digest in the HSM; DER ECDSA signature."""
    return backend.sign_digest(key_label, hashlib.sha256(tbs_der).digest())


def throwaway_signing_key() -> ec.EllipticCurvePrivateKey:
    """A fresh in-memory P-256 key used only to let ``cryptography`` encode a TBS for linting."""
    return ec.generate_private_key(ec.SECP256R1())
