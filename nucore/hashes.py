"""SHA-256, HMAC-SHA256, HKDF-SHA256, CRC32 and constant-time compare from the native core.

The same C builds into the board firmware, so host and board agree byte for byte.
"""

from __future__ import annotations

from nucore._ffi import ffi, lib
from nucore.errors import NativeError


def sha256(data: bytes) -> bytes:
    out = ffi.new("uint8_t[32]")
    lib.nc_sha256(data, len(data), out)
    return bytes(out)


def sha256_batch(messages: bytes, msglen: int) -> bytes:
    """Hash ``len(messages) // msglen`` equal-length messages in one call; returns 32*n bytes."""
    if msglen <= 0 or len(messages) % msglen:
        raise NativeError("sha256_batch: buffer is not a whole number of messages")
    n = len(messages) // msglen
    out = ffi.new("uint8_t[]", 32 * n)
    lib.nc_sha256_batch(messages, msglen, n, out)
    return bytes(out)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    out = ffi.new("uint8_t[32]")
    lib.nc_hmac_sha256(key, len(key), data, len(data), out)
    return bytes(out)


def hkdf_sha256(ikm: bytes, length: int, salt: bytes = b"", info: bytes = b"") -> bytes:
    if not 0 <= length <= 255 * 32:
        raise NativeError(f"hkdf_sha256: length {length} out of range 0..8160")
    out = ffi.new("uint8_t[]", max(length, 1))
    lib.nc_hkdf_sha256(salt, len(salt), ikm, len(ikm), info, len(info), out, length)
    return bytes(out)[:length]


def crc32(data: bytes, crc: int = 0) -> int:
    return int(lib.nc_crc32(crc & 0xFFFFFFFF, data, len(data)))


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time equality (time depends only on the length)."""
    if len(a) != len(b):
        return False
    return bool(lib.nc_ct_equal(a, b, len(a)))
