"""HSM key backends: the ``KeyBackend`` interface, the PKCS#11 backend, pkcs11: URIs, SoftHSM2 helpers.

Import from here: ``from pki.hsm import KeyBackend, KeyPolicy, open_backend``.
"""

from __future__ import annotations

from pki.hsm.backend import (
    DIGEST_LEN,
    P256_POINT_LEN,
    EphemeralKeyPair,
    KeyBackend,
    KeyPairInfo,
    KeyPolicy,
    SecretKey,
    SecretKeyKind,
)
from pki.hsm.pkcs11 import Pkcs11Backend, open_backend
from pki.hsm.uri import Pkcs11Uri, parse_pkcs11_uri, resolve_pin, resolve_so_pin

__all__ = [
    "DIGEST_LEN",
    "P256_POINT_LEN",
    "EphemeralKeyPair",
    "KeyBackend",
    "KeyPairInfo",
    "KeyPolicy",
    "Pkcs11Backend",
    "Pkcs11Uri",
    "SecretKey",
    "SecretKeyKind",
    "open_backend",
    "parse_pkcs11_uri",
    "resolve_pin",
    "resolve_so_pin",
]
