"""RFC 6962 Merkle trees: one signature over a root covers many records, and any single record can
be checked alone with a logarithmic audit path.

Leaf hash = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), and the tree over n
leaves splits at the largest power of two below n. Used by the bulk OTP batches (``nusec
otp``, whose chunks of a power-of-two size are complete subtrees) and by the OEM service when it
checks that a batch image belongs to a sealed batch before importing its key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(line: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(hashes: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves (or over complete subtree roots of equal size)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(root(hashes[:k]), root(hashes[k:]))


def proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path (sibling hashes, leaf level first) of ``hashes[index]``."""
    if not 0 <= index < len(hashes):
        raise IndexError("leaf index out of range")
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return [*proof(hashes[:k], index), root(hashes[k:])]
    return [*proof(hashes[k:], index - k), root(hashes[:k])]


def root_from_proof(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf hash and its audit path (RFC 6962 section 2.1.1)."""
    if not 0 <= index < size:
        raise ValueError("leaf index out of range")

    def go(idx: int, n: int, rest: list[bytes]) -> bytes:
        if n == 1:
            if rest:
                raise ValueError("audit path too long")
            return leaf
        if not rest:
            raise ValueError("audit path too short")
        k = _split(n)
        sibling = rest.pop()
        if idx < k:
            return node_hash(go(idx, k, rest), sibling)
        return node_hash(sibling, go(idx - k, n - k, rest))

    return go(index, size, list(path))
