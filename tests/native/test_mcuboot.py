"""``nucore.mcuboot``, the one MCUboot header/TLV parser and encoder, against imgtool (the
format's own tool): it reads what ``imgtool sign`` writes, protected TLVs included, and
``imgtool verify`` accepts what it encodes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from nucore import mcuboot

IMGTOOL = str(Path(sys.executable).with_name("imgtool"))
TLV_SEC_CNT = 0x50  # imgtool --security-counter: a protected TLV
BODY = (0x20110000).to_bytes(4, "little") + (0x00100201).to_bytes(4, "little") + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    d = tmp_path_factory.mktemp("mcuboot")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (d / "k.pem").write_bytes(pem)
    (d / "pub.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return d, key


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("protected", [False, True])
def test_parses_what_imgtool_signs(signer: tuple[Path, ec.EllipticCurvePrivateKey], protected: bool) -> None:
    d, key = signer
    (d / "raw.bin").write_bytes(BODY)
    args = ["--key", str(d / "k.pem"), "--header-size", "0x200", "--pad-header", "--align", "4"]
    args += ["--version", "1.2.3+4", "--slot-size", "0x40000"]
    args += ["--security-counter", "5"] if protected else []
    out = d / f"signed-{protected}.bin"
    subprocess.run([IMGTOOL, "sign", *args, str(d / "raw.bin"), str(out)], check=True, capture_output=True)
    data = out.read_bytes()

    image = mcuboot.parse(data)
    h = image.header
    assert (h.header_size, h.image_size, h.flags, h.version) == (0x200, len(BODY), 0, (1, 2, 3, 4))
    assert data[h.header_size : h.body_end] == BODY and h.version_text == "1.2.3+4"
    assert (h.protected_tlv_size != 0) is protected
    assert image.protected == ([(TLV_SEC_CNT, (5).to_bytes(4, "little"))] if protected else [])
    digest = mcuboot.signed_digest(data, image)
    assert image.values(mcuboot.TLV_SHA256) == [digest]
    assert image.values(mcuboot.TLV_KEYHASH) == [hashlib.sha256(_spki(key)).digest()]
    (sig,) = image.values(mcuboot.TLV_ECDSA_SIG)
    key.public_key().verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert image.end <= len(data) and data[image.end :].strip(b"\xff") == b""


def test_imgtool_verifies_what_it_encodes(signer: tuple[Path, ec.EllipticCurvePrivateKey]) -> None:
    d, key = signer
    header = mcuboot.encode_header(
        load_address=0, header_size=0x20, image_size=len(BODY), version=(2, 0, 1, 7)
    )
    signed = header + BODY
    digest = hashlib.sha256(signed).digest()
    sig = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    tlvs = [
        (mcuboot.TLV_SHA256, digest),
        (mcuboot.TLV_KEYHASH, hashlib.sha256(_spki(key)).digest()),
        (mcuboot.TLV_ECDSA_SIG, sig),
    ]
    (d / "ours.bin").write_bytes(signed + mcuboot.encode_tlv_area(tlvs))
    res = subprocess.run(
        [IMGTOOL, "verify", "-k", str(d / "pub.pem"), str(d / "ours.bin")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2.0.1+7" in res.stdout
    assert mcuboot.parse(signed + mcuboot.encode_tlv_area(tlvs)).tlvs == tlvs


@pytest.mark.parametrize(
    ("data", "part", "message"),
    [
        (b"\0" * 64, "magic", "bad magic"),
        (
            mcuboot.encode_header(load_address=0, header_size=32, image_size=0, version=(0, 0, 0, 0))[:20],
            "header",
            "32-byte header",
        ),
        (
            mcuboot.encode_header(load_address=0, header_size=16, image_size=0, version=(0, 0, 0, 0)),
            "header",
            "below 32",
        ),
        (
            mcuboot.encode_header(load_address=0, header_size=32, image_size=9, version=(0, 0, 0, 0)),
            "header",
            "runs past",
        ),
        (
            mcuboot.encode_header(load_address=0, header_size=32, image_size=0, version=(0, 0, 0, 0)),
            "tlv",
            "missing",
        ),
        (
            mcuboot.encode_header(load_address=0, header_size=32, image_size=0, version=(0, 0, 0, 0))
            + mcuboot.encode_tlv_area([(0x10, b"x" * 32)])[:-1],
            "tlv",
            "does not fit",
        ),
        (
            mcuboot.encode_header(load_address=0, header_size=32, image_size=0, version=(0, 0, 0, 0))
            + bytes.fromhex("0769 0a00 1000 2000 0000"),
            "tlv",
            "runs past its area",
        ),
    ],
)
def test_malformed_images_name_the_part(data: bytes, part: str, message: str) -> None:
    with pytest.raises(mcuboot.McubootError, match=message) as info:
        mcuboot.parse(data)
    assert info.value.part == part
