"""Per-board secure-boot keys: deterministic seeds from the batch secret, and batch key generation.

seed_i = HKDF-SHA256(salt = batch_id, ikm = batch_seed, info = "nusec-otp-sb-key/1" || u64be(i)
|| uid_i, L = 32); the private key is the native core's seed -> scalar mapping (HKDF rejection
sampling, ``nc_p256_scalar_from_seed``). ``keygen_batch`` is the one call that turns N seeds into
N key pairs: the native batch keygen (one shared inversion, ``nucore.p256_batch``) when it is built, else
the same mapping through cryptography, so swapping implementations never changes a key.
"""

from __future__ import annotations

import hmac
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nucore import otp

SEED_INFO = b"nusec-otp-sb-key/1"
SCALAR_SALT = b"NuSec P-256 keygen v1"
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
#: PKCS#8 PrivateKeyInfo for a P-256 key without the optional public key: this prefix + 32-byte
#: scalar. It is what CKM_AES_KEY_WRAP_PAD unwraps into a CKO_PRIVATE_KEY on a PKCS#11 token.
PKCS8_PREFIX = bytes.fromhex("3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420")
PKCS8_LEN = len(PKCS8_PREFIX) + 32


def seed_prk(batch_seed: bytes, batch_id: bytes) -> bytes:
    """HKDF-Extract(salt = batch_id, ikm = batch_seed)."""
    return hmac.digest(batch_id, batch_seed, "sha256")


def board_seeds(prk: bytes, start: int, uids: Sequence[bytes]) -> bytes:
    """Seeds of boards start..start+len(uids)-1, back to back (HKDF-Expand, one block each), in
    one native call (``board_seeds_reference`` is the same in Python)."""
    return otp.board_seeds(prk, SEED_INFO, start, len(uids), b"".join(uids))


def board_seeds_reference(prk: bytes, start: int, uids: Sequence[bytes]) -> bytes:
    return b"".join(
        hmac.digest(prk, SEED_INFO + (start + k).to_bytes(8, "big") + uid + b"\x01", "sha256")
        for k, uid in enumerate(uids)
    )


def scalar_from_seed(seed: bytes) -> int:
    """The reference for the native mapping: first HKDF candidate in [1, n-1]."""
    prk = hmac.digest(SCALAR_SALT, seed, "sha256")
    for i in range(256):
        d = int.from_bytes(hmac.digest(prk, bytes([i]) + b"\x01", "sha256"), "big")
        if 1 <= d < P256_N:
            return d
    raise ValueError("no valid scalar from seed")  # pragma: no cover - probability ~2^-8192


def _keygen_cryptography(seeds: bytes) -> tuple[bytes, bytes]:
    privs: list[bytes] = []
    pubs: list[bytes] = []
    for i in range(0, len(seeds), 32):
        d = scalar_from_seed(seeds[i : i + 32])
        key = ec.derive_private_key(d, ec.SECP256R1())
        privs.append(d.to_bytes(32, "big"))
        pubs.append(
            key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
    return b"".join(privs), b"".join(pubs)


def _native_keygen() -> Callable[[bytes], tuple[bytes, bytes]] | None:
    for name in ("nucore.p256_batch", "nucore.p256"):
        try:
            mod: Any = importlib.import_module(name)
        except ImportError:
            continue
        fn = getattr(mod, "keygen_batch", None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def keygen_backend() -> str:
    """Which implementation ``keygen_batch`` uses: "native" or "cryptography"."""
    return "native" if _native_keygen() is not None else "cryptography"


def keygen_batch(seeds: bytes, *, force_python: bool = False) -> tuple[bytes, bytes]:
    """N 32-byte seeds -> (N*32 private scalars big-endian, N*65 SEC1 uncompressed public keys)."""
    if len(seeds) % 32:
        raise ValueError("seeds must be a whole number of 32-byte items")
    native = None if force_python else _native_keygen()
    if native is None:
        return _keygen_cryptography(seeds)
    privs, pubs = native(seeds)
    return bytes(privs), bytes(pubs)


def pkcs8_blobs(privs: bytes) -> bytes:
    """N scalars -> N PKCS#8 blobs (``PKCS8_LEN`` bytes each), the plaintext that gets wrapped."""
    return b"".join(PKCS8_PREFIX + privs[i : i + 32] for i in range(0, len(privs), 32))
