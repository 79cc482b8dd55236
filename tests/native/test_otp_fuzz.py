"""Fuzzing the OTP parser: random bytes and mutated valid images never crash it, never make it
read out of bounds (checked by running the corpus under AddressSanitizer in a subprocess), and
always end in either a parsed image or one of the named errors."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nucore import otp

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((Path(__file__).parent / "golden" / "otp_v1.json").read_text())["vectors"]
VALID = [bytes.fromhex(v["expected_image"]) for v in GOLDEN]
KNOWN_MESSAGES = {otp.OtpError(c).args[0] for c in otp.OtpErrorCode}


def _outcome(data: bytes) -> int:
    """0 if it parses, else the error code; asserts the error is a clear, known one."""
    try:
        p = otp.parse(data)
    except otp.OtpError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.split(" (at byte")[0] in KNOWN_MESSAGES
        return int(exc.code)
    assert p.to_bytes() == data and p.digest_ok
    return 0


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    img = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["byte", "u32", "len", "truncate", "extend"]))
        off = draw(st.integers(0, len(img) - 1)) if img else 0
        if kind == "byte" and img:
            img[off] = draw(st.integers(0, 255))
        elif kind == "u32" and len(img) >= off + 4:
            img[off : off + 4] = struct.pack("<I", draw(st.integers(0, 2**32 - 1)))
        elif kind == "len" and len(img) == 2048:  # lengths and DER headers are where parsers break
            where = draw(st.sampled_from([0xDC, 0x401, 0x402, 0x101, 0x102]))
            img[where : where + 2] = draw(st.binary(min_size=2, max_size=2))
        elif kind == "truncate":
            del img[draw(st.integers(0, len(img))) :]
        else:
            img += draw(st.binary(max_size=16))
    if len(img) == 2048 and draw(st.booleans()):  # keep the digest right so deeper rules are reached
        img[0x7E0:] = hashlib.sha256(bytes(img[0x400:0x700]) + bytes(img[:0x100])).digest()
    return bytes(img)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=3000), st.binary(min_size=2048, max_size=2048)))
def test_random_bytes_rejected_cleanly(data: bytes) -> None:
    assert _outcome(data) != 0 or data in VALID


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_images())
def test_mutated_images_parse_or_fail_cleanly(data: bytes) -> None:
    _outcome(data)


def _corpus(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out: list[bytes] = [b"", b"NSO1", bytes(2048), b"\xff" * 2048, *VALID]
    for _ in range(n):
        img = bytearray(rng.choice(VALID))
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.5:
                img[rng.randrange(2048)] = rng.randrange(256)
            elif r < 0.8:
                where = rng.choice([0xDC, 0xDD, 0x401, 0x402, 0x403, 0x101, 0x102, 0x103])
                img[where] = rng.choice([0, 0x7F, 0x80, 0x81, 0x82, 0x83, 0xFF, rng.randrange(256)])
            else:
                img[rng.randrange(0x100, 0x700)] = 0x30
        if rng.random() < 0.7:
            img[0x7E0:] = hashlib.sha256(bytes(img[0x400:0x700]) + bytes(img[:0x100])).digest()
        if rng.random() < 0.1:
            img = img[: rng.randrange(2048)]
        out.append(bytes(img))
    return out


def _build_harness(nc_otp_c: Path, exe: Path, sanitize: list[str]) -> Path:
    """Compile ``nc_otp_c`` (the real one, or a broken copy) with the C harness under ``sanitize``."""
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-O1",
            "-g",
            *sanitize,
            "-I",
            str(ROOT / "csrc"),
            str(nc_otp_c),
            str(ROOT / "csrc" / "nc_hash.c"),
            str(Path(__file__).parent / "otp_asan_harness.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return exe


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_corpus_under_address_sanitizer(tmp_path: Path) -> None:
    exe = _build_harness(
        ROOT / "csrc" / "nc_otp.c",
        tmp_path / "otp_asan",
        ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
    )
    corpus = _corpus(3000, seed=8)
    path = tmp_path / "corpus.bin"
    path.write_bytes(b"".join(struct.pack("<I", len(c)) + c for c in corpus))
    res = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ERROR: AddressSanitizer" not in res.stderr and "runtime error" not in res.stderr
    codes = [tuple(map(int, line.split())) for line in res.stdout.splitlines()]
    assert len(codes) == len(corpus)
    # same verdicts as the Python face, so the harness really parsed what we think it parsed
    assert [c[0] for c in codes] == [_outcome(c) for c in corpus]
    assert {c[0] for c in codes} >= {0, int(otp.OtpErrorCode.DIGEST), int(otp.OtpErrorCode.NOT_BLANK)}


def test_harness_catches_an_overread(tmp_path: Path) -> None:
    """The sanitizer setup can fail: a parser that reads one byte past the buffer is caught."""
    src = (ROOT / "csrc" / "nc_otp.c").read_text()
    broken = src.replace(
        "if (len != NC_OTP_SIZE) return NC_OTP_E_SIZE;",
        "if (len != NC_OTP_SIZE && img[len] != 0x55) return NC_OTP_E_SIZE;",
    )
    assert broken != src
    (tmp_path / "nc_otp.c").write_text(broken)
    exe = _build_harness(tmp_path / "nc_otp.c", tmp_path / "otp_asan", ["-fsanitize=address"])
    path = tmp_path / "corpus.bin"
    path.write_bytes(struct.pack("<I", 100) + bytes(100))
    res = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "heap-buffer-overflow" in res.stderr
