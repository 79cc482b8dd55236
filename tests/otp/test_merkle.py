"""The Merkle tree: chunked roots equal the one-tree root (what lets workers hash their own chunk),
every proof verifies, and a wrong leaf, index or path does not."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pki import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(b"line %d" % i) for i in range(n)]


def test_rfc6962_shape() -> None:
    a, b, c = _leaves(3)
    assert merkle.root([a]) == a
    assert merkle.root([a, b]) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.root([a, b, c]) == merkle.node_hash(merkle.node_hash(a, b), c)
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.sampled_from([1, 2, 4, 8, 16, 64]))
def test_chunked_root_equals_full_root(n: int, chunk: int) -> None:
    leaves = _leaves(n)
    chunk_roots = [merkle.root(leaves[i : i + chunk]) for i in range(0, n, chunk)]
    assert merkle.root(chunk_roots) == merkle.root(leaves)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 130), st.sampled_from([1, 4, 16]), st.data())
def test_chunked_proofs_verify(n: int, chunk: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    i = data.draw(st.integers(0, n - 1))
    c, k = divmod(i, chunk)
    chunk_roots = [merkle.root(leaves[j : j + chunk]) for j in range(0, n, chunk)]
    path = merkle.proof(leaves[c * chunk : c * chunk + chunk], k) + merkle.proof(chunk_roots, c)
    assert path == merkle.proof(leaves, i)
    root = merkle.root(leaves)
    assert merkle.root_from_proof(leaves[i], i, n, path) == root
    assert merkle.root_from_proof(merkle.leaf_hash(b"forged"), i, n, path) != root
    if n > 1:
        j = (i + 1) % n  # the same path at another index: wrong length or wrong root
        try:
            assert merkle.root_from_proof(leaves[i], j, n, path) != root
        except ValueError:
            pass


def test_bad_paths_raise() -> None:
    leaves = _leaves(5)
    path = merkle.proof(leaves, 2)
    with pytest.raises(ValueError, match="too short"):
        merkle.root_from_proof(leaves[2], 2, 5, path[:-1])
    with pytest.raises(ValueError, match="too long"):
        merkle.root_from_proof(leaves[2], 2, 5, [b"\x00" * 32, *path])
    with pytest.raises(ValueError, match="out of range"):
        merkle.root_from_proof(leaves[2], 5, 5, path)
    with pytest.raises(IndexError):
        merkle.proof(leaves, 5)
