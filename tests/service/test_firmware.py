"""MCUboot image building, checked by imgtool (the format's own tool) — no HSM needed here:
``sign_image`` takes any digest signer; the live-service tests repeat this with the HSM key."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from pki.service import firmware
from tests.service.firmware_util import IMGTOOL, cortex_m_firmware, imgtool_verify

MAX = 64 * 1024


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pub(key: ec.EllipticCurvePrivateKey) -> tuple[bytes, str]:
    pub = key.public_key()
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return der, pem


def _imgtool_unsigned(tmp_path: Path, size: int, version: str, header_size: str) -> bytes:
    """An unsigned MCUboot image of a ``size``-byte firmware, made by ``imgtool create`` (no key)."""
    raw = tmp_path / "fw.bin"
    raw.write_bytes(cortex_m_firmware(size, header_size=int(header_size, 16)))
    unsigned = tmp_path / "unsigned.bin"
    subprocess.run(
        [IMGTOOL, "create", "--version", version, "--header-size", header_size, "--pad-header", "--slot-size",
         "0x20000", str(raw), str(unsigned)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return unsigned.read_bytes()


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes, **kw: object) -> firmware.SignedImage:
    der, _ = _pub(key)
    return firmware.sign_image(
        data,
        public_key_der=der,
        sign_digest=lambda d: key.sign(d, ec.ECDSA(utils.Prehashed(hashes.SHA256()))),
        max_size=MAX,
        **kw,  # type: ignore[arg-type]
    )


def test_raw_firmware_signed_image_passes_imgtool(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    signed = _sign(key, cortex_m_firmware(), version=firmware.ImageVersion.parse("1.2.3+4"))
    magic, _load, hdr, _ptlv, size = struct.unpack_from("<IIHHI", signed.image)
    assert magic == 0x96F3B83D and hdr == firmware.DEFAULT_HEADER_SIZE and size == 4096
    result = imgtool_verify(signed.image, _pub(key)[1], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1.2.3.4" in result.stdout or "1.2.3" in result.stdout


def test_other_key_is_rejected_by_imgtool(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    signed = _sign(key, cortex_m_firmware())
    other = ec.generate_private_key(ec.SECP256R1())
    refused = imgtool_verify(signed.image, _pub(other)[1], tmp_path)
    assert refused.returncode == 1, refused.stdout
    assert "No signature found for the given key" in refused.stdout


def test_flipped_byte_is_rejected_by_imgtool(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    image = bytearray(_sign(key, cortex_m_firmware()).image)
    image[firmware.DEFAULT_HEADER_SIZE + 100] ^= 1
    refused = imgtool_verify(bytes(image), _pub(key)[1], tmp_path)
    assert refused.returncode == 1 and "Image has an invalid hash" in refused.stdout, refused.stdout


def test_imgtool_unsigned_image_is_accepted_and_keeps_its_header(
    key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    signed = _sign(key, _imgtool_unsigned(tmp_path, 2048, "2.0.1+7", "0x400"))
    assert str(signed.version) == "2.0.1+7"
    assert struct.unpack_from("<H", signed.image, 8)[0] == 0x400
    assert imgtool_verify(signed.image, _pub(key)[1], tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\xff" * 256, "stack pointer"),
        (struct.pack("<II", 0x2000_1000, 0x0010_0200) + bytes(248), "Thumb"),  # even reset vector
        (bytes(MAX + 1), "limit"),
        (struct.pack("<I", 0x96F3B83D) + bytes(4), "shorter than its 32-byte header"),
        (struct.pack("<IIHHIIBBHII", 0x96F3B83D, 0, 32, 0, 1000, 0, 1, 0, 0, 0, 0), "runs past"),
        (struct.pack("<IIHHIIBBHII", 0x96F3B83D, 0, 32, 0, 0, 0x4, 1, 0, 0, 0, 0), "encryption"),
    ],
)
def test_garbage_is_refused(key: ec.EllipticCurvePrivateKey, data: bytes, message: str) -> None:
    with pytest.raises(firmware.FirmwareError, match=message):
        _sign(key, data)


def test_signed_image_is_not_resigned(key: ec.EllipticCurvePrivateKey) -> None:
    signed = _sign(key, cortex_m_firmware())
    with pytest.raises(firmware.FirmwareError, match=r"TLV 0x22"):
        _sign(key, signed.image)


def test_corrupted_hash_tlv_is_refused(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    data = bytearray(_imgtool_unsigned(tmp_path, 1024, "1.0.0", "0x200"))
    data[0x200 + 50] ^= 0xFF
    with pytest.raises(firmware.FirmwareError, match="SHA256 TLV does not match"):
        _sign(key, bytes(data))


def _with_vectors(body: bytes, *vectors: int) -> bytes:
    return struct.pack(f"<{len(vectors)}I", *vectors) + body[4 * len(vectors) :]


GOOD = cortex_m_firmware(1024)
SP, RESET = struct.unpack_from("<II", GOOD)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD[:8], "at least 256"),  # the 8-byte file the issue saw signed
        (struct.pack("<II", SP, RESET) + b"#!/bin/sh\nrm -rf /\n" * 40, "exception vector 2"),  # a script
        (_with_vectors(GOOD, SP, 0x0000_0201), "not a Thumb address inside the image"),  # reset elsewhere
        (_with_vectors(GOOD, SP, 0x0010_0020 + 1024 + 1), "inside the image"),  # just past the end
        (_with_vectors(GOOD, 0x1000_0000, RESET), "stack pointer in SRAM"),
        (_with_vectors(GOOD, SP + 4, RESET), "8-byte aligned"),
        (struct.pack("<IIHHIIBBHII", 0x96F3B83D, 0, 32, 0, 0, 0, 1, 0, 0, 0, 0) + GOOD, "image size is 0"),
        (struct.pack("<IIHHIIBBHII", 0x96F3B83D, 0, 32, 0, 8, 0, 1, 0, 0, 0, 0) + GOOD[:8], "at least 256"),
    ],
)
def test_raw_and_mcuboot_inputs_are_checked_as_their_format(
    key: ec.EllipticCurvePrivateKey, data: bytes, message: str
) -> None:
    with pytest.raises(firmware.FirmwareError, match=message):
        _sign(key, data)


def test_the_reference_firmware_passes_the_checks(key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    from nusec.demo import FIRMWARE

    data = FIRMWARE.read_bytes()
    assert imgtool_verify(_sign(key, data).image, _pub(key)[1], tmp_path).returncode == 0


@pytest.mark.parametrize(
    "text", ["1", "1.2", "256.0.0", "1.2.3+x", "a.b.c", "\u0661.\u0662.\u0663", "1.2.3\n", "\uff11.2.3"]
)
def test_bad_versions_are_refused(text: str) -> None:
    with pytest.raises(firmware.FirmwareError):
        firmware.ImageVersion.parse(text)


def test_raw_firmware_with_a_larger_header_and_load_address(
    key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    signed = _sign(
        key,
        cortex_m_firmware(1000, header_size=0x200, load_address=0x0010_0000),
        header_size=0x200,
        load_address=0x0010_0000,
    )
    _magic, load, hdr, _ptlv, size = struct.unpack_from("<IIHHI", signed.image)
    assert (load, hdr, size) == (0x0010_0000, 0x200, 1000)
    assert signed.image[32:0x200] == b"\xff" * (0x200 - 32)
    assert imgtool_verify(signed.image, _pub(key)[1], tmp_path).returncode == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 0xFFFFFFFF), st.integers(32, 0x400))
def test_any_input_is_signed_or_refused_cleanly(data: bytes, img_size: int, hdr: int) -> None:
    """Random bytes, and random MCUboot-looking headers, never raise anything but FirmwareError."""
    key = _FUZZ_KEY
    header = struct.pack("<IIHHIIBBHII", 0x96F3B83D, 0, hdr, 0, img_size, 0, 1, 2, 3, 4, 0)
    for candidate in (data, header + data):
        try:
            signed = _sign(key, candidate)
        except firmware.FirmwareError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert struct.unpack_from("<I", signed.image)[0] == 0x96F3B83D


_FUZZ_KEY = ec.generate_private_key(ec.SECP256R1())
