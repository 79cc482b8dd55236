"""MCUboot image format (docs/firmware-image.md): the header and TLV areas, parsed and encoded.

Why one module: the OEM service signs these images (``pki.service.firmware``), the desktop
checks them before burning (``nusec.provision.firmware``), and the simulated boot ROM verifies
them at every reset (``nusim.bootrom``). They must read the same bytes the same way, so the
layout lives here, in the lowest layer all three import. What each does with a parsed image
(which flags it allows, how many signatures, what it refuses) stays its own policy.

Layout: a header (magic ``0x96f3b83d``, load address, header size, protected TLV size, image
size, flags, version), header padding up to the header size, the image body, an optional
protected TLV area (magic ``0x6908``, covered by the hash), then the TLV area (magic ``0x6907``)
of ``type: u16, length: u16, value`` records. The SHA-256 covers everything before the TLV area.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

IMAGE_MAGIC: Final = 0x96F3_B83D
HEADER_SIZE: Final = 32
TLV_INFO_MAGIC: Final = 0x6907
TLV_PROT_INFO_MAGIC: Final = 0x6908
TLV_KEYHASH: Final = 0x01
TLV_SHA256: Final = 0x10
TLV_ECDSA_SIG: Final = 0x22

#: magic, load_addr, hdr_size, protect_tlv_size, img_size, flags, major, minor, revision, build, pad
_HEADER = struct.Struct("<IIHHIIBBHII")
_TLV = struct.Struct("<HH")

Part = Literal["magic", "header", "tlv", "hash", "keyhash", "no-signature", "signature"]


class McubootError(ValueError):
    """The bytes are not a well-formed MCUboot image; ``part`` says where (for callers that map
    it to their own verdict, as the boot ROM maps it to a BOOT_FAIL reason)."""

    def __init__(self, part: Part, message: str) -> None:
        super().__init__(message)
        self.part: Part = part


@dataclass(frozen=True)
class Header:
    load_address: int
    header_size: int
    protected_tlv_size: int
    image_size: int
    flags: int
    version: tuple[int, int, int, int]  # major, minor, revision, build

    @property
    def body_end(self) -> int:
        """Offset just past the image body (where the TLVs start)."""
        return self.header_size + self.image_size

    @property
    def version_text(self) -> str:
        major, minor, revision, build = self.version
        return f"{major}.{minor}.{revision}+{build}"


def is_image(data: bytes) -> bool:
    """True when ``data`` starts with the MCUboot image magic."""
    return len(data) >= 4 and int.from_bytes(data[:4], "little") == IMAGE_MAGIC


def parse_header(data: bytes, *, complete: bool = True) -> Header:
    """The header of ``data``; with ``complete`` its sizes must fit ``data`` (``McubootError``
    otherwise), without it ``data`` may be just the first bytes (to learn how much to read)."""
    if not is_image(data):
        raise McubootError("magic", "not an MCUboot image (bad magic)")
    if len(data) < HEADER_SIZE:
        raise McubootError("header", f"MCUboot image shorter than its 32-byte header ({len(data)} bytes)")
    _magic, load, hdr_size, ptlv, img_size, flags, major, minor, rev, build, _pad = _HEADER.unpack_from(data)
    header = Header(load, hdr_size, ptlv, img_size, flags, (major, minor, rev, build))
    if hdr_size < HEADER_SIZE:
        raise McubootError("header", f"MCUboot header size {hdr_size} is below {HEADER_SIZE}")
    if complete and header.body_end > len(data):
        raise McubootError(
            "header",
            f"MCUboot header's image size runs past the end of the data "
            f"(header {hdr_size} + image {img_size} bytes, have {len(data)})",
        )
    return header


def parse_tlv_area(data: bytes, start: int, magic: int) -> tuple[list[tuple[int, bytes]], int]:
    """The ``(type, value)`` records of the TLV area at ``start`` (with ``magic``) and the offset
    just past the area."""
    what = "protected TLV" if magic == TLV_PROT_INFO_MAGIC else "TLV"
    if start + _TLV.size > len(data):
        raise McubootError("tlv", f"MCUboot {what} area is missing")
    info_magic, total = _TLV.unpack_from(data, start)
    if info_magic != magic:
        raise McubootError("tlv", f"MCUboot {what} area magic 0x{info_magic:04x} is not 0x{magic:04x}")
    end = start + total
    if total < _TLV.size or end > len(data):
        raise McubootError("tlv", f"MCUboot {what} area of {total} bytes does not fit")
    records: list[tuple[int, bytes]] = []
    off = start + _TLV.size
    while off < end:
        if off + _TLV.size > end:
            raise McubootError("tlv", f"MCUboot {what} record header at +0x{off:x} is truncated")
        kind, length = _TLV.unpack_from(data, off)
        if off + _TLV.size + length > end:
            raise McubootError("tlv", f"MCUboot TLV 0x{kind:02x} at +0x{off:x} runs past its area")
        records.append((kind, bytes(data[off + _TLV.size : off + _TLV.size + length])))
        off += _TLV.size + length
    return records, end


@dataclass(frozen=True)
class Image:
    """A parsed signed image: header, protected and unprotected TLV records, and where the part
    the hash covers ends."""

    header: Header
    protected: list[tuple[int, bytes]]
    tlvs: list[tuple[int, bytes]]
    signed_end: int
    end: int

    def values(self, kind: int) -> list[bytes]:
        """Every unprotected TLV value of ``kind``, in order."""
        return [value for k, value in self.tlvs if k == kind]


def parse(data: bytes) -> Image:
    """Header, protected TLV area (when the header declares one) and TLV area of ``data``."""
    header = parse_header(data)
    protected: list[tuple[int, bytes]] = []
    signed_end = header.body_end
    if header.protected_tlv_size:
        protected, signed_end = parse_tlv_area(data, header.body_end, TLV_PROT_INFO_MAGIC)
        if signed_end - header.body_end != header.protected_tlv_size:
            raise McubootError("tlv", "MCUboot protected TLV size disagrees with the header")
    tlvs, end = parse_tlv_area(data, signed_end, TLV_INFO_MAGIC)
    return Image(header, protected, tlvs, signed_end, end)


def signed_digest(data: bytes, image: Image) -> bytes:
    """SHA-256 of what the signature covers: header, body and protected TLVs."""
    return hashlib.sha256(data[: image.signed_end]).digest()


def verify(data: bytes, key: ec.EllipticCurvePublicKey, *, require_keyhash: bool = False) -> Image:
    """The image, parsed, once its SHA256 TLV, KEYHASH (SHA-256 of ``key``'s DER
    SubjectPublicKeyInfo; required when ``require_keyhash``) and ECDSA-P256 signature all check
    out with ``key``; ``McubootError`` naming the first that does not (part hash, keyhash,
    no-signature or signature)."""
    image = parse(data)
    digest = signed_digest(data, image)
    if image.values(TLV_SHA256)[:1] != [digest]:
        raise McubootError("hash", "SHA-256 TLV does not match the image")
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    keyhash = image.values(TLV_KEYHASH)
    if require_keyhash and not keyhash:
        raise McubootError("keyhash", "image carries no KEYHASH TLV")
    if keyhash and keyhash[0] != hashlib.sha256(spki).digest():
        raise McubootError("keyhash", "image was signed for another key (KEYHASH mismatch)")
    sigs = image.values(TLV_ECDSA_SIG)
    if not sigs:
        raise McubootError("no-signature", "image carries no ECDSA-P256 signature TLV")
    try:
        key.verify(sigs[0], digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        raise McubootError("signature", "signature does not verify with the key") from None
    return image


def encode_header(
    *,
    load_address: int,
    header_size: int,
    image_size: int,
    version: tuple[int, int, int, int],
    protected_tlv_size: int = 0,
    flags: int = 0,
) -> bytes:
    """The 32-byte header (padding up to ``header_size`` is the caller's)."""
    major, minor, revision, build = version
    return _HEADER.pack(
        IMAGE_MAGIC,
        load_address,
        header_size,
        protected_tlv_size,
        image_size,
        flags,
        major,
        minor,
        revision,
        build,
        0,
    )


def encode_tlv_area(records: list[tuple[int, bytes]], magic: int = TLV_INFO_MAGIC) -> bytes:
    """A TLV area holding ``records`` in order."""
    body = b"".join(_TLV.pack(kind, len(value)) + value for kind, value in records)
    return _TLV.pack(magic, _TLV.size + len(body)) + body
