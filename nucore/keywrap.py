"""AES-256 key wrap with padding (RFC 5649), batched in C.

Bulk OTP runs wrap one private key per board under one batch key; a Python loop over the 6*n
block encryptions of each key would cost more than making the key. The output is the standard
KWP format, so any PKCS#11 token unwraps it with CKM_AES_KEY_WRAP_PAD.
"""

from __future__ import annotations

from nucore._ffi import ffi, lib
from nucore.errors import NativeError

MAX_INPUT = 4096


def wrapped_len(secret_len: int) -> int:
    """Bytes of one wrapped secret of ``secret_len`` bytes."""
    return int(lib.nc_kwp_wrapped_len(secret_len))


def wrap_batch(kek: bytes, secrets: bytes, secret_len: int) -> bytes:
    """Wrap ``len(secrets) // secret_len`` equal-length secrets under the 32-byte ``kek``;
    returns the wrapped secrets back to back (``wrapped_len(secret_len)`` bytes each)."""
    if len(kek) != 32:
        raise NativeError("key wrap: the KEK must be 32 bytes (AES-256)")
    if not 1 <= secret_len <= MAX_INPUT or len(secrets) % secret_len:
        raise NativeError("key wrap: secrets must be a whole number of 1..4096-byte items")
    n = len(secrets) // secret_len
    out = bytearray(wrapped_len(secret_len) * n)
    if n:
        rc = lib.nc_aes256_kwp_wrap_batch(kek, ffi.from_buffer(secrets), secret_len, n, ffi.from_buffer(out))
        if rc != 0:  # pragma: no cover - arguments were checked above
            raise NativeError(f"key wrap failed ({rc})")
    return bytes(out)


def wrap(kek: bytes, secret: bytes) -> bytes:
    """Wrap one secret (1..4096 bytes)."""
    if not secret:
        raise NativeError("key wrap: the secret is empty")
    return wrap_batch(kek, secret, len(secret))


def uses_aesni() -> bool:
    return bool(lib.nc_kw_uses_aesni())
