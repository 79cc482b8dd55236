"""The signed firmware: check it against the secure-boot key, burn it to flash, verify.

The image is MCUboot's format (docs/firmware-image.md), parsed by ``nucore.mcuboot``. The
desktop checks it itself before burning — hash TLV over header and body, KEYHASH of the
secure-boot public key, ECDSA-P256 signature — because a board whose boot ROM refuses its only
firmware after the lock is lost.

Flash is programmed through FMC ISP (PAGE_ERASE, then one PROGRAM per non-blank word) over the
debugger's memory port, then read back over the bus and compared. A page that already holds the
image's bytes is left alone, so a resumed run never erases finished work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from nuboard import layout
from nucore import mcuboot
from nusec.provision.errors import ProvisionError, VerificationError
from nusec.provision.otp_writer import BLANK_WORD, ISPCTL_APUEN, FmcIsp

FLASH_BASE = 0x0010_0000
FLASH_SIZE = 0x0020_0000
FLASH_PAGE_SIZE = 0x2000


@dataclass(frozen=True)
class ImageInfo:
    """What the check of a signed image found."""

    size: int
    header_size: int
    body_size: int
    version: str
    sha256: bytes


def verify_mcuboot_image(
    image: bytes, secure_boot_xy: bytes, *, what: str = "signed firmware", require_keyhash: bool = False
) -> ImageInfo:
    """Check an MCUboot image against the 64-byte secure-boot public key; ``VerificationError`` if not."""
    try:
        parsed = mcuboot.verify(image, _p256(secure_boot_xy), require_keyhash=require_keyhash)
    except mcuboot.McubootError as exc:
        raise VerificationError(f"{what}: {exc}") from None
    header = parsed.header
    digest = mcuboot.signed_digest(image, parsed)
    return ImageInfo(len(image), header.header_size, header.image_size, header.version_text, digest)


def verify_nubl2_image(image: bytes, root_xy: bytes) -> ImageInfo:
    """Check NuBL2 as the mask ROM will: KEYHASH and signature of the ROM root key, header 0x400,
    and it fits the NuBL2 slot below the application."""
    info = verify_mcuboot_image(image, root_xy, what="NuBL2", require_keyhash=True)
    if info.header_size != layout.NUBL2_HEADER_SIZE or len(image) > layout.NUBL2_SLOT_SIZE:
        raise VerificationError("NuBL2 is not laid out for its slot (header 0x400, at most 256 KiB)")
    return info


def _p256(xy: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xy[-64:])
    except ValueError:
        raise VerificationError("secure-boot public key is not a valid P-256 point") from None


class FlashPort(Protocol):
    """Bus reads of flash plus 32-bit register access (a pyocd ``Target``)."""

    def read32(self, addr: int) -> int: ...

    def write32(self, addr: int, value: int) -> None: ...

    def read_memory_block8(self, addr: int, size: int) -> list[int]: ...


@dataclass
class FlashResult:
    bytes_programmed: int
    pages_erased: int
    pages_skipped: int
    seconds: float


def read_flash(mem: FlashPort, addr: int, size: int) -> bytes:
    return bytes(mem.read_memory_block8(addr, size))


def burn(
    mem: FlashPort,
    isp: FmcIsp,
    image: bytes,
    *,
    base: int = FLASH_BASE,
    on_progress: Callable[[int, int], None] | None = None,
) -> FlashResult:
    """Program ``image`` at ``base`` page by page (skip pages already equal), then verify all."""
    if len(image) > FLASH_SIZE:
        raise ProvisionError(f"firmware of {len(image)} bytes does not fit the {FLASH_SIZE}-byte flash")
    padded = image + b"\xff" * (-len(image) % 4)
    t0 = time.monotonic()
    erased = skipped = programmed = 0
    for off in range(0, len(padded), FLASH_PAGE_SIZE):
        chunk = padded[off : off + FLASH_PAGE_SIZE]
        page_addr = base + off
        current = read_flash(mem, page_addr, len(chunk))
        if current == chunk:
            skipped += 1
            programmed += len(chunk)
            if on_progress:
                on_progress(programmed, len(padded))
            continue
        if current != b"\xff" * len(chunk):
            isp.page_erase(page_addr)
            erased += 1
        words = [(page_addr + i, int.from_bytes(chunk[i : i + 4], "little")) for i in range(0, len(chunk), 4)]
        isp.program_many([(a, w) for a, w in words if w != BLANK_WORD], enable=ISPCTL_APUEN)
        programmed += len(chunk)
        if on_progress:
            on_progress(programmed, len(padded))
    back = read_flash(mem, base, len(padded))
    if back != padded:
        first = next(i for i in range(len(padded)) if back[i] != padded[i])
        raise ProvisionError(f"flash verify failed at 0x{base + first:08X} after programming the firmware")
    return FlashResult(len(padded), erased, skipped, time.monotonic() - t0)
