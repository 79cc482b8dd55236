"""MCUboot image signing: wrap a firmware binary in MCUboot's header and TLVs, signed in the HSM.

The format is MCUboot's (``docs/firmware-image.md``; the layout is ``nucore.mcuboot``'s), so
``imgtool verify -k pub.pem`` and any MCUboot-based boot ROM check our output. The HSM only ever
sees the SHA-256 digest of header + body; the secure-boot private key never leaves it. Input is
checked before anything is signed: the service refuses to put its signature on bytes that do not
look like a Cortex-M image.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from nuboard import layout
from nucore import mcuboot
from nucore.mcuboot import HEADER_SIZE as IMAGE_HEADER_SIZE

# Flags we refuse in an input header: we do not encrypt/compress, and RAM_LOAD/ROM_FIXED need care.
REFUSED_FLAGS = 0x4 | 0x8 | 0x20 | 0x100 | 0x200 | 0x400 | 0x800

DEFAULT_HEADER_SIZE = layout.APP_HEADER_SIZE  # snippets/firmware's firmware_bl2 (imgtool --header-size 0x400)
# ASCII digits only: ``\d`` would take any Unicode digit ("١.٢.٣"), and ``$`` a trailing newline.
_VERSION_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,5})(?:\+([0-9]{1,10}))?", re.ASCII)

#: Where the application's slot starts when no load address is given: the slot NuBL2 verifies
#: (``nuboard.layout``; snippets/firmware's firmware_bl2 is linked for APP_SLOT_ADDRESS + 0x400).
APP_SLOT_ADDRESS = layout.APP_BASE
#: Where an initial stack pointer may point: the M55M1's SRAM (DTCM 0x20000000, SRAM0-2 from
#: 0x20100000); the top of the stack may be the end of the region.
SRAM_START, SRAM_END = 0x2000_0000, 0x2040_0000
#: The Cortex-M system vectors checked: initial SP, reset, and the 14 exception handlers.
SYSTEM_VECTORS = 16
#: The smallest body the service signs: a vector table and some code.
MIN_BODY_BYTES = 256


class FirmwareError(ValueError):
    """The input is not something the service will sign; the message says what is wrong."""


@dataclass(frozen=True)
class ImageVersion:
    major: int
    minor: int
    revision: int
    build: int

    @classmethod
    def parse(cls, text: str) -> ImageVersion:
        m = _VERSION_RE.fullmatch(text)
        if m is None:
            raise FirmwareError(f"version {text!r} is not MAJOR.MINOR.REVISION[+BUILD]")
        major, minor, revision, build = (int(g) if g else 0 for g in m.groups())
        if major > 255 or minor > 255 or revision > 0xFFFF or build > 0xFFFFFFFF:
            raise FirmwareError(f"version {text!r} is out of range (255.255.65535+4294967295)")
        return cls(major, minor, revision, build)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.revision}+{self.build}"


@dataclass(frozen=True)
class SignedImage:
    image: bytes
    sha256: bytes  # the SHA256 TLV value: digest of header + body
    version: ImageVersion


def check_cortex_m_vectors(body: bytes, base: int) -> None:
    """Refuse a body that is not a Cortex-M image linked to run at ``base``: at least
    ``MIN_BODY_BYTES``; initial SP in SRAM, 8-byte aligned; reset handler a Thumb address inside
    the body; each other system exception vector 0 or a Thumb address inside the body."""
    if len(body) < MIN_BODY_BYTES:
        raise FirmwareError(
            f"firmware body is {len(body)} bytes; a Cortex-M image is at least {MIN_BODY_BYTES}"
        )
    vectors = struct.unpack_from(f"<{SYSTEM_VECTORS}I", body, 0)
    sp, reset = vectors[0], vectors[1]
    if not SRAM_START < sp <= SRAM_END or sp % 8:
        raise FirmwareError(
            f"first word 0x{sp:08x} is not an initial stack pointer in SRAM "
            f"(0x{SRAM_START:08x}-0x{SRAM_END:08x}, 8-byte aligned)"
        )
    end = base + len(body)

    def inside(vector: int) -> bool:
        return vector & 1 == 1 and base + 4 * SYSTEM_VECTORS <= vector - 1 < end

    if not inside(reset):
        raise FirmwareError(
            f"reset vector 0x{reset:08x} is not a Thumb address inside the image (0x{base:08x}-0x{end:08x})"
        )
    for number, vector in enumerate(vectors[2:], start=2):
        if vector != 0 and not inside(vector):
            raise FirmwareError(
                f"exception vector {number} (0x{vector:08x}) is not 0 or a Thumb address inside the image"
            )


def split_unsigned_image(data: bytes) -> tuple[int, bytes, bytes, ImageVersion]:
    """Parse an unsigned MCUboot image (``imgtool create`` without a key).

    Returns (load address, header padding, body, version); the padding (bytes 32..hdr_size,
    0xFF from imgtool) is kept as is, since it is covered by the hash."""
    try:
        header = mcuboot.parse_header(data)
    except mcuboot.McubootError as exc:
        raise FirmwareError(str(exc)) from None
    hdr_size, end = header.header_size, header.body_end
    if hdr_size % 4:
        raise FirmwareError(f"MCUboot header size {hdr_size} is invalid (>= 32, multiple of 4)")
    if header.protected_tlv_size:
        raise FirmwareError("MCUboot input carries protected TLVs; send an unsigned image")
    if header.flags & REFUSED_FLAGS:
        raise FirmwareError(
            f"MCUboot flags 0x{header.flags:x} ask for encryption/compression/RAM load: not supported"
        )
    if header.image_size == 0:
        raise FirmwareError("MCUboot header's image size is 0")
    _check_unsigned_tlvs(data, end)
    return (
        header.load_address,
        data[IMAGE_HEADER_SIZE:hdr_size],
        data[hdr_size:end],
        ImageVersion(*header.version),
    )


def _check_unsigned_tlvs(data: bytes, end: int) -> None:
    """An unsigned image may end in a TLV area holding only its hash (what ``imgtool create``
    writes without a key); the hash must match. Anything else after the body is refused."""
    if end == len(data):
        return
    if data[end : end + 2] == mcuboot.TLV_PROT_INFO_MAGIC.to_bytes(2, "little"):
        raise FirmwareError("MCUboot input carries protected TLVs; send an unsigned image")
    try:
        records, area_end = mcuboot.parse_tlv_area(data, end, mcuboot.TLV_INFO_MAGIC)
    except mcuboot.McubootError:
        area_end = -1
    if area_end != len(data):
        raise FirmwareError("bytes after the MCUboot image body are not one well-formed TLV area")
    for kind, value in records:
        if kind == mcuboot.TLV_SHA256:
            if value != hashlib.sha256(data[:end]).digest():
                raise FirmwareError("MCUboot SHA256 TLV does not match the image (corrupted input)")
        elif kind != mcuboot.TLV_KEYHASH:
            raise FirmwareError(
                f"MCUboot input carries TLV 0x{kind:02x} (signed or encrypted?); send an unsigned image"
            )


def sign_image(
    firmware: bytes,
    *,
    public_key_der: bytes,
    sign_digest: Callable[[bytes], bytes],
    version: ImageVersion | None = None,
    header_size: int = DEFAULT_HEADER_SIZE,
    load_address: int = 0,
    slot_address: int = APP_SLOT_ADDRESS,
    max_size: int,
) -> SignedImage:
    """Build and sign an MCUboot image.

    ``firmware`` is either a raw Cortex-M binary (a header of ``header_size`` bytes is prepended)
    or an unsigned MCUboot image (its header fields and padding are kept). ``sign_digest`` gets the SHA-256 of
    header + body and returns a DER ECDSA signature (the HSM's job). ``public_key_der`` is the
    SubjectPublicKeyInfo whose SHA-256 goes into the KEYHASH TLV.
    """
    if not firmware:
        raise FirmwareError("firmware is empty")
    if len(firmware) > max_size:
        raise FirmwareError(f"firmware is {len(firmware)} bytes; the limit is {max_size}")
    if mcuboot.is_image(firmware):
        load_address, padding, body, parsed_version = split_unsigned_image(firmware)
        version = version or parsed_version
    else:
        if header_size < IMAGE_HEADER_SIZE or header_size % 4 or header_size > 0x10000:
            raise FirmwareError(f"header size {header_size} is invalid (32..65536, multiple of 4)")
        padding = b"\xff" * (header_size - IMAGE_HEADER_SIZE)  # erased flash, as imgtool --pad-header
        body = firmware
    if not 0 <= load_address <= 0xFFFFFFFF:
        raise FirmwareError("load address out of 32-bit range")
    check_cortex_m_vectors(body, (load_address or slot_address) + IMAGE_HEADER_SIZE + len(padding))
    version = version or ImageVersion(0, 0, 0, 0)

    header = mcuboot.encode_header(
        load_address=load_address,
        header_size=IMAGE_HEADER_SIZE + len(padding),
        image_size=len(body),
        version=(version.major, version.minor, version.revision, version.build),
    )
    signed_region = header + padding + body
    digest = hashlib.sha256(signed_region).digest()
    signature = sign_digest(digest)
    tlvs = mcuboot.encode_tlv_area(
        [
            (mcuboot.TLV_SHA256, digest),
            (mcuboot.TLV_KEYHASH, hashlib.sha256(public_key_der).digest()),
            (mcuboot.TLV_ECDSA_SIG, signature),
        ]
    )
    return SignedImage(signed_region + tlvs, digest, version)
