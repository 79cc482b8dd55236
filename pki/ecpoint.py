"""P-256 public keys as SEC1 uncompressed points (``04‖X‖Y``, 65 bytes) and the key ids made from them.

Why: the HSM (CKA_EC_POINT, CKA_ID), OTP, the board and the wire all carry this one encoding, and
both key backends name a key pair by the SHA-1 of its point (the X.509 SKI method 1), so the two
conversions live here once.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def point_of(key: ec.EllipticCurvePublicKey) -> bytes:
    """65-byte SEC1 uncompressed point."""
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def key_id_of(key: ec.EllipticCurvePublicKey) -> bytes:
    """The default key id (CKA_ID) of a key pair: SHA-1 of its uncompressed point."""
    return hashlib.sha1(point_of(key), usedforsecurity=False).digest()
