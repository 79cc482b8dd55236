"""ECDSA P-256 signature encodings: raw ``r‖s`` (PKCS#11, the board) and DER (X.509, CSRs).

Why: PKCS#11 CKM_ECDSA and the board's KeyStore return 64-byte ``r‖s``; X.509 and PKCS#10
need ``ECDSA-Sig-Value`` DER. Every conversion goes through these two functions.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from pki.errors import PkiError

#: Bytes of one P-256 scalar.
SCALAR_LEN = 32


def raw_to_der(raw: bytes) -> bytes:
    """64-byte ``r‖s`` → DER ECDSA-Sig-Value."""
    if len(raw) != 2 * SCALAR_LEN:
        raise PkiError(f"raw P-256 signature must be {2 * SCALAR_LEN} bytes, got {len(raw)}")
    r = int.from_bytes(raw[:SCALAR_LEN], "big")
    s = int.from_bytes(raw[SCALAR_LEN:], "big")
    return encode_dss_signature(r, s)


def der_to_raw(der: bytes) -> bytes:
    """DER ECDSA-Sig-Value → 64-byte ``r‖s``."""
    try:
        r, s = decode_dss_signature(der)
    except ValueError:
        raise PkiError("signature is not a DER ECDSA-Sig-Value") from None
    if r >= 1 << 256 or s >= 1 << 256:
        raise PkiError("signature scalars are too large for P-256")
    return r.to_bytes(SCALAR_LEN, "big") + s.to_bytes(SCALAR_LEN, "big")
