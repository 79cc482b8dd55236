"""The native AES-256 KWP against cryptography (OpenSSL) and the FIPS-197 AES-256 vector, on
both the AES-NI and the portable constant-time code paths. On a CPU without AES-NI the AES-NI
cases skip, naming the reason, and the portable path still runs."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding, aes_key_wrap_with_padding
from hypothesis import given, settings
from hypothesis import strategies as st

from nucore import NativeError, keywrap
from nucore._ffi import lib


def cpu_has_aesni() -> bool:
    """What the kernel says about this CPU (an oracle apart from the native core's own check)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return "aes" in flags


NO_AESNI = "this CPU has no AES-NI (no 'aes' flag in /proc/cpuinfo): only the portable path runs"


@pytest.fixture(params=["aesni", "portable"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "aesni" and not cpu_has_aesni():
        pytest.skip(NO_AESNI)
    lib.nc_kw_force_portable(1 if request.param == "portable" else 0)
    try:
        yield str(request.param)
    finally:
        lib.nc_kw_force_portable(0)


def test_fips197_aes256(path: str) -> None:
    from nucore._ffi import ffi

    out = ffi.new("uint8_t[16]")
    lib.nc_aes256_encrypt_block(bytes(range(32)), bytes.fromhex("00112233445566778899aabbccddeeff"), out)
    assert bytes(out).hex() == "8ea2b7ca516745bfeafc49904b496089"


def test_aesni_is_used_where_the_cpu_has_it() -> None:
    if not cpu_has_aesni():
        assert not keywrap.uses_aesni()  # the dispatch must not pick instructions the CPU lacks
        pytest.skip(NO_AESNI)
    assert keywrap.uses_aesni()  # the bench figures assume it


@pytest.mark.parametrize("length", [1, 7, 8, 9, 16, 31, 32, 67, 72, 100, 4096])
def test_matches_cryptography(path: str, length: int) -> None:
    kek = bytes(range(100, 132))
    secret = bytes((i * 7 + length) & 0xFF for i in range(length))
    wrapped = keywrap.wrap(kek, secret)
    assert wrapped == aes_key_wrap_with_padding(kek, secret)
    assert aes_key_unwrap_with_padding(kek, wrapped) == secret


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(1, 80), st.integers(0, 6), st.data())
def test_batch_matches_cryptography(kek: bytes, item: int, n: int, data: st.DataObject) -> None:
    secrets = data.draw(st.binary(min_size=item * n, max_size=item * n))
    out = keywrap.wrap_batch(kek, secrets, item)
    w = keywrap.wrapped_len(item)
    assert len(out) == w * n
    for i in range(n):
        assert out[w * i : w * (i + 1)] == aes_key_wrap_with_padding(kek, secrets[item * i : item * (i + 1)])


@pytest.mark.parametrize(
    ("kek", "secrets", "size", "match"),
    [
        (b"k" * 16, b"x" * 8, 8, "32 bytes"),
        (b"k" * 32, b"x" * 9, 8, "whole number"),
        (b"k" * 32, b"x" * 8, 0, "whole number"),
    ],
)
def test_rejects_bad_arguments(kek: bytes, secrets: bytes, size: int, match: str) -> None:
    with pytest.raises(NativeError, match=match):
        keywrap.wrap_batch(kek, secrets, size)
    with pytest.raises(NativeError, match="empty"):
        keywrap.wrap(b"k" * 32, b"")
