"""The native SHA-256/HMAC/HKDF/CRC32 against Python's and cryptography's implementations."""

from __future__ import annotations

import hashlib
import hmac
import zlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from nucore import NativeError
from nucore import hashes as nh


@pytest.mark.parametrize(
    ("msg", "digest"),
    [
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ],
)
def test_sha256_fips_vectors(msg: bytes, digest: str) -> None:
    assert nh.sha256(msg).hex() == digest


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_sha256_matches_hashlib(data: bytes) -> None:
    assert nh.sha256(data) == hashlib.sha256(data).digest()


@settings(max_examples=200)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_hmac_matches_stdlib(key: bytes, data: bytes) -> None:
    assert nh.hmac_sha256(key, data) == hmac.new(key, data, hashlib.sha256).digest()


@settings(max_examples=100)
@given(st.binary(max_size=80), st.binary(max_size=40), st.binary(max_size=40), st.integers(1, 600))
def test_hkdf_matches_cryptography(ikm: bytes, salt: bytes, info: bytes, length: int) -> None:
    ref = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
    assert nh.hkdf_sha256(ikm, length, salt=salt, info=info) == ref


def test_hkdf_rejects_too_long() -> None:
    with pytest.raises(NativeError):
        nh.hkdf_sha256(b"k", 255 * 32 + 1)


@settings(max_examples=200)
@given(st.binary(max_size=500))
def test_crc32_matches_zlib(data: bytes) -> None:
    assert nh.crc32(data) == zlib.crc32(data)


def test_ct_equal() -> None:
    assert nh.ct_equal(b"abc", b"abc")
    assert not nh.ct_equal(b"abc", b"abd")
    assert not nh.ct_equal(b"abc", b"ab")
    assert nh.ct_equal(b"", b"")


def test_sha256_batch() -> None:
    msgs = [bytes([i]) * 40 for i in range(17)]
    out = nh.sha256_batch(b"".join(msgs), 40)
    assert [out[32 * i : 32 * i + 32] for i in range(17)] == [hashlib.sha256(m).digest() for m in msgs]
    with pytest.raises(NativeError):
        nh.sha256_batch(b"x" * 41, 40)
