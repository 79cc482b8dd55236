"""Batch P-256: N keygens / signatures / verifications / ECDHs per native call on flat buffers.

Each call hands contiguous buffers to C, which releases the GIL, so ``threads=k`` splits a batch
over k OS threads that really run in parallel. Keygen, sign and fixed-peer ECDH run k * P for a
whole chunk in affine coordinates, the chunk's divisions sharing one inversion per comb window
(Montgomery's trick). ``PeerTable`` precomputes a fixed-base table for one public key, so
bulk ECDH or verification against a key that stays constant through a batch (a server or CA key)
costs a fixed-base multiplication instead of a variable-base one; ``verify_batch`` and
``ecdh_batch`` build one themselves when a batch of at least TABLE_THRESHOLD items uses one key.

Layouts: seeds, private scalars, digests and ECDH secrets are 32 bytes each; public keys are
SEC1 uncompressed (65 bytes); signatures are raw ``r || s`` (64 bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nucore._ffi import ffi, lib
from nucore.errors import NativeError
from nucore.p256 import PublicKey


def _count(buf: bytes, size: int, what: str) -> int:
    if len(buf) % size:
        raise NativeError(f"{what}: length {len(buf)} is not a multiple of {size}")
    return len(buf) // size


def _shared_or_each(buf: bytes, size: int, n: int, what: str) -> int:
    """Stride for a buffer holding either one item for all or exactly n items."""
    if len(buf) == size:
        return 0
    if len(buf) == size * n:
        return size
    raise NativeError(
        f"{what}: expected {size} bytes (one for all) or {size * n} bytes ({n} items), got {len(buf)}"
    )


def _run(n: int, threads: int, call: Callable[[int, int], int]) -> int:
    """call(start, count) over n items, split into ``threads`` slices; returns the summed result."""
    if threads < 1:
        raise NativeError(f"threads must be >= 1, got {threads}")
    if threads == 1 or n < 2 * threads:
        return call(0, n)
    step = (n + threads - 1) // threads
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(call, start, min(step, n - start)) for start in range(0, n, step)]
        return sum(f.result() for f in futures)


# From this many items on, a batch against ONE public key builds that key's comb table first
# (~1 ms, about 15 variable-base multiplications) and runs fixed-base multiplications.
TABLE_THRESHOLD = 32


def _in(buf: bytes) -> Any:
    return ffi.from_buffer("uint8_t[]", buf)


def keygen_batch(seeds: bytes, *, threads: int = 1) -> tuple[bytes, bytes]:
    """n 32-byte seeds -> (n private scalars, n uncompressed public keys), as ``PrivateKey.from_seed``."""
    n = _count(seeds, 32, "keygen_batch seeds")
    src = _in(seeds)
    privs = ffi.new("uint8_t[]", max(32 * n, 1))
    pubs = ffi.new("uint8_t[]", max(65 * n, 1))
    failed = _run(
        n,
        threads,
        lambda s, c: int(lib.nc_p256_keygen_batch(src + 32 * s, c, privs + 32 * s, pubs + 65 * s)),
    )
    if failed:
        raise NativeError(f"keygen_batch: {failed} seed(s) gave no scalar")
    return bytes(ffi.buffer(privs, 32 * n)), bytes(ffi.buffer(pubs, 65 * n))


def _first_bad(status: Any, n: int) -> int:
    return next(i for i in range(n) if status[i])


def sign_batch(
    privs: bytes, digests: bytes, *, extra_entropy: bytes | None = None, threads: int = 1
) -> bytes:
    """Sign n 32-byte digests with one key (32-byte ``privs``) or one key each (32n bytes).

    ``extra_entropy`` (same for every item) hedges the RFC 6979 nonces. Returns n raw signatures.
    """
    n = _count(digests, 32, "sign_batch digests")
    stride = _shared_or_each(privs, 32, n, "sign_batch private keys")
    extra = bytes(extra_entropy) if extra_entropy else b""
    pk, dg = _in(privs), _in(digests)
    ex = _in(extra) if extra else ffi.NULL
    sigs = ffi.new("uint8_t[]", max(64 * n, 1))
    status = ffi.new("uint8_t[]", max(n, 1))
    failed = _run(
        n,
        threads,
        lambda s, c: int(
            lib.nc_p256_sign_batch(
                pk + stride * s, stride, dg + 32 * s, ex, len(extra), c, sigs + 64 * s, status + s
            )
        ),
    )
    if failed:
        raise NativeError(f"sign_batch: private key {_first_bad(status, n)} is not in [1, n-1]")
    return bytes(ffi.buffer(sigs, 64 * n))


def verify_batch(pubs: bytes, digests: bytes, signatures: bytes, *, threads: int = 1) -> list[bool]:
    """Verify n raw signatures over n digests against one key (65 bytes) or one key each (65n)."""
    n = _count(digests, 32, "verify_batch digests")
    if len(signatures) != 64 * n:
        raise NativeError(f"verify_batch: expected {64 * n} bytes of signatures, got {len(signatures)}")
    stride = _shared_or_each(pubs, 65, n, "verify_batch public keys")
    if stride == 0 and n >= TABLE_THRESHOLD:
        try:
            key = PublicKey.from_sec1(pubs)
        except NativeError:
            return [False] * n
        return PeerTable(key).verify_batch(digests, signatures, threads=threads)
    pk, dg, sg = _in(pubs), _in(digests), _in(signatures)
    status = ffi.new("uint8_t[]", max(n, 1))
    _run(
        n,
        threads,
        lambda s, c: int(
            lib.nc_p256_verify_batch(pk + stride * s, stride, dg + 32 * s, sg + 64 * s, c, status + s)
        ),
    )
    return [status[i] == 0 for i in range(n)]


def ecdh_batch(privs: bytes, pubs: bytes, *, threads: int = 1) -> bytes:
    """n shared secrets: one private key or n, against one peer key or n (uncompressed)."""
    n = max(len(privs) // 32, len(pubs) // 65)
    if n == 0:
        return b""
    pstride = _shared_or_each(privs, 32, n, "ecdh_batch private keys")
    qstride = _shared_or_each(pubs, 65, n, "ecdh_batch public keys")
    if qstride == 0 and pstride and n >= TABLE_THRESHOLD:
        try:
            key = PublicKey.from_sec1(pubs)
        except NativeError:
            raise NativeError("ecdh_batch: item 0: public key is not a valid P-256 point") from None
        return PeerTable(key).ecdh_batch(privs, threads=threads)
    pk, qk = _in(privs), _in(pubs)
    out = ffi.new("uint8_t[]", 32 * n)
    status = ffi.new("uint8_t[]", n)
    failed = _run(
        n,
        threads,
        lambda s, c: int(
            lib.nc_p256_ecdh_batch(
                pk + pstride * s, pstride, qk + qstride * s, qstride, c, out + 32 * s, status + s
            )
        ),
    )
    if failed:
        i = _first_bad(status, n)
        why = "public key is not a valid P-256 point" if status[i] == 1 else "private key is not in [1, n-1]"
        raise NativeError(f"ecdh_batch: item {i}: {why}")
    return bytes(ffi.buffer(out, 32 * n))


class PeerTable:
    """A precomputed fixed-base table (~88 KB) for one public key: fast bulk ECDH and verification."""

    __slots__ = ("_table", "public_key")

    def __init__(self, public_key: PublicKey) -> None:
        self.public_key = public_key
        self._table = ffi.new("uint64_t[]", int(lib.nc_p256_table_size()) // 8)
        rc = lib.nc_p256_table_init(self._table, public_key.to_sec1())
        if rc != 0:  # pragma: no cover - PublicKey is always valid
            raise NativeError("PeerTable: not a valid P-256 public key")

    def ecdh_batch(self, privs: bytes, *, threads: int = 1) -> bytes:
        """n shared secrets (32n bytes) of n private scalars (32n bytes) with this key."""
        n = _count(privs, 32, "PeerTable.ecdh_batch private keys")
        pk = _in(privs)
        out = ffi.new("uint8_t[]", max(32 * n, 1))
        status = ffi.new("uint8_t[]", max(n, 1))
        failed = _run(
            n,
            threads,
            lambda s, c: int(
                lib.nc_p256_ecdh_fixed_batch(self._table, pk + 32 * s, c, out + 32 * s, status + s)
            ),
        )
        if failed:
            raise NativeError(f"ecdh_batch: item {_first_bad(status, n)}: private key is not in [1, n-1]")
        return bytes(ffi.buffer(out, 32 * n))

    def verify_batch(self, digests: bytes, signatures: bytes, *, threads: int = 1) -> list[bool]:
        """Verify n raw signatures over n digests, all made by this key."""
        n = _count(digests, 32, "PeerTable.verify_batch digests")
        if len(signatures) != 64 * n:
            raise NativeError(
                f"PeerTable.verify_batch: expected {64 * n} bytes of signatures, got {len(signatures)}"
            )
        dg, sg = _in(digests), _in(signatures)
        status = ffi.new("uint8_t[]", max(n, 1))
        _run(
            n,
            threads,
            lambda s, c: int(
                lib.nc_p256_verify_fixed_batch(self._table, dg + 32 * s, sg + 64 * s, c, status + s)
            ),
        )
        return [status[i] == 0 for i in range(n)]
