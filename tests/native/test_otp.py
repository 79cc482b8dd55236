"""OTP layout v1: the C packer against golden vectors and an independent Python packer, and the
C parser's rules (each one exercised by an image that breaks exactly that rule)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nucore import NativeError, otp
from tests.native.golden import make_otp_v1
from tests.native.otp_reference import reference_pack

GOLDEN = Path(__file__).parent / "golden" / "otp_v1.json"
VECTORS: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["vectors"]
BYTE_FIELDS = ("root_pub", "root_cert_sha256", "ica_cert_sha256", "secure_boot_pub", "uid", "ica_cert")


def _inputs(v: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: bytes.fromhex(v[k]) for k in BYTE_FIELDS}
    out["board_cert"] = bytes.fromhex(v["board_cert"]) or None
    out["policy"] = v["policy"]
    out["flags"] = v["flags"]
    return out


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_golden_vectors(v: dict[str, Any]) -> None:
    img = otp.pack(**_inputs(v))
    assert img.hex() == v["expected_image"]
    assert otp.digest(img).hex() == v["expected_digest"]
    parsed = otp.parse(img)
    assert parsed.digest_ok and parsed.to_bytes() == img
    assert parsed.ica_cert == bytes.fromhex(v["ica_cert"])
    assert parsed.board_cert == (bytes.fromhex(v["board_cert"]) or None)
    assert parsed.flags == v["flags"] and parsed.config == v["policy"] and parsed.version == 1


def test_golden_file_is_reproducible() -> None:
    """The generator (certificates with deterministic ECDSA, reference packer) gives the same file."""
    assert make_otp_v1.build() == json.loads(GOLDEN.read_text())


def test_golden_board_and_ica_certs_are_real_certificates() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    v = VECTORS[1]
    ica = x509.load_der_x509_certificate(bytes.fromhex(v["ica_cert"]))
    board = x509.load_der_x509_certificate(bytes.fromhex(v["board_cert"]))
    board.verify_directly_issued_by(ica)
    assert hashlib.sha256(ica.public_bytes(Encoding.DER)).hexdigest() == v["ica_cert_sha256"]


def _der_seq(content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        hdr = bytes([0x30, n])
    elif n < 0x100:
        hdr = bytes([0x30, 0x81, n])
    else:
        hdr = bytes([0x30, 0x82]) + struct.pack(">H", n)
    return hdr + content


@settings(max_examples=150, deadline=None)
@given(
    root_pub=st.binary(min_size=64, max_size=64),
    shas=st.binary(min_size=64, max_size=64),
    sb=st.binary(min_size=64, max_size=64),
    uid=st.binary(min_size=12, max_size=12),
    ica_content=st.binary(min_size=0, max_size=764),
    board_content=st.one_of(st.none(), st.binary(min_size=0, max_size=764)),
    policy=st.integers(0, 3),
    flags=st.integers(0, 1),
)
def test_pack_matches_reference_and_round_trips(
    root_pub: bytes,
    shas: bytes,
    sb: bytes,
    uid: bytes,
    ica_content: bytes,
    board_content: bytes | None,
    policy: int,
    flags: int,
) -> None:
    ica = _der_seq(ica_content)
    board = _der_seq(board_content) if board_content is not None else b""
    args = dict(
        root_pub=root_pub,
        root_cert_sha256=shas[:32],
        ica_cert_sha256=shas[32:],
        secure_boot_pub=sb,
        uid=uid,
        ica_cert=ica,
        policy=policy,
        flags=flags,
    )
    img = otp.pack(**args, board_cert=board or None)  # type: ignore[arg-type]
    assert img == reference_pack(**args, board_cert=board)  # type: ignore[arg-type]
    p = otp.parse(img)
    assert (p.root_pub, p.secure_boot_pub, p.uid, p.ica_cert) == (root_pub, sb, uid, ica)
    assert p.board_cert == (board or None)
    assert p.digest == hashlib.sha256(img[0x400:0x700] + img[:0x100]).digest()


def test_pack_batch_equals_single_packs() -> None:
    v = _inputs(VECTORS[0])
    n = 37
    pubs = b"".join(hashlib.sha512(b"pub%d" % i).digest() for i in range(n))
    uids = b"".join(hashlib.sha256(b"uid%d" % i).digest()[:12] for i in range(n))
    images, digests = otp.pack_batch(
        root_pub=v["root_pub"],
        root_cert_sha256=v["root_cert_sha256"],
        ica_cert_sha256=v["ica_cert_sha256"],
        ica_cert=v["ica_cert"],
        secure_boot_pubs=pubs,
        uids=uids,
        policy=3,
        flags=otp.OtpFlags.BATCH,
    )
    assert len(images) == n * 2048 and len(digests) == n * 32
    for i in range(n):
        single = otp.pack(
            root_pub=v["root_pub"],
            root_cert_sha256=v["root_cert_sha256"],
            ica_cert_sha256=v["ica_cert_sha256"],
            secure_boot_pub=pubs[64 * i : 64 * i + 64],
            uid=uids[12 * i : 12 * i + 12],
            ica_cert=v["ica_cert"],
            policy=3,
            flags=1,
        )
        assert images[2048 * i : 2048 * (i + 1)] == single
        assert digests[32 * i : 32 * i + 32] == single[0x7E0:]
    assert otp.pack_batch(**{**_batch_shared(v), "secure_boot_pubs": b"", "uids": b""}) == (b"", b"")
    with pytest.raises(NativeError, match="2 secure-boot keys but 1 UIDs"):
        otp.pack_batch(**{**_batch_shared(v), "secure_boot_pubs": pubs[:128], "uids": uids[:12]})
    with pytest.raises(NativeError, match="whole multiples"):
        otp.pack_batch(**{**_batch_shared(v), "secure_boot_pubs": pubs[:63], "uids": uids[:12]})


def _batch_shared(v: dict[str, Any]) -> dict[str, Any]:
    return {k: v[k] for k in ("root_pub", "root_cert_sha256", "ica_cert_sha256", "ica_cert")}


def test_field_entries_cover_the_image_once_and_match_the_doc() -> None:
    covered = sorted(e for f in otp.FIELDS.values() for e in f.entries)
    assert covered == list(range(256))
    assert otp.OtpImage.entries("secure_boot_pub") == range(17, 25)  # the simulator's boot ROM reads these
    assert otp.OtpImage.entries("digest") == range(252, 256)
    img = otp.parse(bytes.fromhex(VECTORS[1]["expected_image"]))
    assert img.field_bytes("secure_boot_pub") == img.secure_boot_pub
    assert img.field_bytes("uid") == img.uid + b"\xff" * 4
    assert img.entry(252) == img.digest[:8]
    with pytest.raises(NativeError, match="no field named"):
        otp.OtpImage.entries("nope")
    with pytest.raises(NativeError, match="out of range"):
        img.entry(256)


def _good() -> bytearray:
    return bytearray.fromhex(VECTORS[1]["expected_image"])


def _redigest(img: bytearray) -> bytes:
    img[0x7E0:] = hashlib.sha256(bytes(img[0x400:0x700]) + bytes(img[:0x100])).digest()
    return bytes(img)


def _mut(off: int, value: bytes, redigest: bool = True) -> bytes:
    img = _good()
    img[off : off + len(value)] = value
    return _redigest(img) if redigest else bytes(img)


@pytest.mark.parametrize(
    ("data", "code", "offset"),
    [
        (b"", otp.OtpErrorCode.SIZE, None),
        (bytes(2047), otp.OtpErrorCode.SIZE, None),
        (bytes(2049), otp.OtpErrorCode.SIZE, None),
        (_mut(0, b"NSO2"), otp.OtpErrorCode.MAGIC, None),
        (_mut(4, b"\x02"), otp.OtpErrorCode.VERSION, 4),
        (_mut(5, b"\x02"), otp.OtpErrorCode.FLAGS, 5),
        (_mut(6, b"\x00"), otp.OtpErrorCode.NOT_BLANK, 6),
        (_mut(0xD5, b"\x00"), otp.OtpErrorCode.NOT_BLANK, 0xD5),
        (_mut(0xD8, b"\x04"), otp.OtpErrorCode.POLICY, 0xD8),
        (_mut(0xDC, struct.pack("<I", 0)), otp.OtpErrorCode.ICA_LEN, 0xDC),
        (_mut(0xDC, struct.pack("<I", 769)), otp.OtpErrorCode.ICA_LEN, 0xDC),
        (_mut(0xDC, struct.pack("<I", 0xFFFFFFFF)), otp.OtpErrorCode.ICA_LEN, 0xDC),
        (_mut(0xDC, struct.pack("<I", 321)), otp.OtpErrorCode.ICA_DER, 0x400),
        (_mut(0x400, b"\x31"), otp.OtpErrorCode.ICA_DER, 0x400),
        (_mut(0x400 + 322, b"\x00"), otp.OtpErrorCode.NOT_BLANK, 0x400 + 322),
        (_mut(0x6FF, b"\x00"), otp.OtpErrorCode.NOT_BLANK, 0x6FF),
        (_mut(0x100, b"\x04"), otp.OtpErrorCode.BOARD_DER, 0x100),
        (_mut(0x101, b"\x83"), otp.OtpErrorCode.BOARD_DER, 0x100),
        (_mut(0x102, b"\x03\x00"), otp.OtpErrorCode.BOARD_DER, 0x100),  # 0x300 > 768 - 4
        (_mut(0x100 + 321, b"\x00"), otp.OtpErrorCode.NOT_BLANK, 0x100 + 321),
        (_mut(0xE0, b"\x00"), otp.OtpErrorCode.NOT_BLANK, 0xE0),
        (_mut(0x7DF, b"\xfe"), otp.OtpErrorCode.NOT_BLANK, 0x7DF),
        (_mut(0x88, b"\x00", redigest=False), otp.OtpErrorCode.DIGEST, 0x7E0),
        (_mut(0x7FF, b"\x00", redigest=False), otp.OtpErrorCode.DIGEST, 0x7E0),
    ],
)
def test_parser_rules(data: bytes, code: otp.OtpErrorCode, offset: int | None) -> None:
    with pytest.raises(otp.OtpError) as exc:
        otp.parse(data)
    assert exc.value.code == code
    if offset is not None:
        assert exc.value.offset == offset
        assert f"0x{offset:03X}" in str(exc.value)
    assert str(exc.value).startswith("OTP image: ") and "\n" not in str(exc.value)


def test_board_area_can_be_blank_or_a_cert() -> None:
    blank = _good()
    blank[0x100:0x400] = b"\xff" * 768
    assert otp.parse(_redigest(blank)).board_cert is None  # digest does not cover it anyway


def test_digest_mismatch_reported_without_raising_when_asked() -> None:
    bad = _mut(0x90, b"\x00", redigest=False)
    p = otp.parse(bad, check_digest=False)
    assert not p.digest_ok
    with pytest.raises(otp.OtpError):  # structural rules still apply
        otp.parse(_mut(0xE0, b"\x00"), check_digest=False)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"root_pub": b"x" * 63}, "root_pub must be 64 bytes"),
        ({"uid": b"x" * 11}, "uid must be 12 bytes"),
        ({"secure_boot_pub": b"x" * 65}, "secure_boot_pub must be 64 bytes"),
        ({"ica_cert": b""}, "ICA certificate length"),
        ({"ica_cert": _der_seq(b"x" * 765)}, "ICA certificate length"),
        ({"ica_cert": b"\x30\x05abc"}, "ICA certificate is not one DER"),
        ({"board_cert": b"\x30\x01ab"}, "board certificate is not"),
        ({"board_cert": _der_seq(b"y" * 800)}, "board certificate is not"),
        ({"policy": 8}, "unknown policy bits"),
        ({"flags": 0x80}, "unknown header flag"),
    ],
)
def test_pack_rejects_bad_inputs(change: dict[str, Any], match: str) -> None:
    args = _inputs(VECTORS[1])
    args.update(change)
    with pytest.raises(NativeError, match=match):
        otp.pack(**args)


def test_board_seeds_argument_checks() -> None:
    assert otp.board_seeds(b"k" * 32, b"info", 0, 0) == b""
    assert len(otp.board_seeds(b"k" * 32, b"", 7, 3, b"u" * 36)) == 96
    with pytest.raises(NativeError, match="prk must be 32"):
        otp.board_seeds(b"k" * 31, b"", 0, 1)
    with pytest.raises(NativeError, match="equal-length"):
        otp.board_seeds(b"k" * 32, b"", 0, 2, b"u" * 5)
    with pytest.raises(NativeError, match="out of range"):
        otp.board_seeds(b"k" * 32, b"", 2**64 - 1, 2)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), max_size=64))
def test_words_to_bytes_agrees_with_struct(words: list[int]) -> None:
    """The one OTP words <-> bytes conversion is little-endian 32-bit, as ``struct`` ("<I") says."""
    data = struct.pack(f"<{len(words)}I", *words)
    assert otp.words_to_bytes(words) == data
    assert otp.bytes_to_words(data) == words
    pairs = list(zip(words[0::2], words[1::2], strict=False))
    assert otp.entries_to_bytes(pairs) == struct.pack(f"<{2 * len(pairs)}I", *(w for p in pairs for w in p))


def test_bytes_to_words_refuses_a_partial_word() -> None:
    with pytest.raises(NativeError, match="whole 32-bit words, got 5 bytes"):
        otp.bytes_to_words(b"\0" * 5)
