"""The boot ROM model: secure boot on every reset.

The boot chain of the part (docs/sim-board.md, "Boot chain"): when KeyStore OTP slots 0 and 1
hold a key (``KS_OTPSTS & 0x3``, as SecureBootDemo's NuBL2 tests it), secure boot is on and that
key (X in slot 0, Y in slot 1) is the ROM's root key: the ROM verifies NuBL2, an MCUboot image at
the APROM base (``nuboard.layout``), with it, KEYHASH included, and starts NuBL2 (real code,
``snippets/nubl2``), which verifies the application at 0x00140000 against SecureBoot_PUB in OTP.

The provisioning flow burns that key (``nusec.provision.rom_key``, the OEM's NuBL2 key from the
nubl2-key ceremony) before it locks a board, so every board it finishes boots through NuBL2. A
board whose slots 0/1 are empty (a blank board, or one built by hand in the simulator's own tests)
takes the model's direct path below. That path is the model's, not the part's: an M55M1 with
empty slots does not verify anything at reset.

As the part's secure boot does, the ROM reads the MCUboot image at the start of flash (the
application slot, ``APP_SLOT_BASE``/``APP_SLOT_SIZE``), hashes header + image + protected TLVs
with SHA-256, checks the SHA-256 TLV, and verifies the ECDSA-P256 signature TLV against the
SecureBoot public key (ROTPK) in OTP entries 17-24 (docs/otp-layout.md). Only then does it load
MSP/PC from the image's vector table (right after the header) and let the core run.

It refuses, and the core stays in lockup until the next reset, when: the ROTPK is blank, the slot
holds no image, the header or TLV area is malformed, the hash or the signature does not match,
or the vector table is unusable. It then sends the fixed BOOT_FAIL frame
(docs/board-protocol.md) on UART0 and answers every later frame with it.

The image format is MCUboot's (docs/firmware-image.md): 32-byte header with magic 0x96f3b83d,
payload, optional protected TLV area (magic 0x6908), TLV area (magic 0x6907) with SHA256 (0x10),
KEYHASH (0x01: SHA-256 of the signing key's DER SubjectPublicKeyInfo; when present it must name
the OTP key, as the host's ``nusec.provision.firmware`` requires) and ECDSA_SIG (0x22, DER).
``imgtool sign --header-size 0x20 --pad-header`` makes such images.
"""

from __future__ import annotations

import struct
import weakref
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from nuboard import layout
from nuboard.keyslots import ROM_ROOT_SLOT_X, ROM_ROOT_SLOT_Y
from nuboard.protocol import BootFailReason, boot_fail_frame
from nucore import mcuboot
from nusim import memmap
from nusim.board import Board, CoreState
from nusim.nvstate import BootRecord, NvState

APP_SLOT_BASE = memmap.FLASH_BASE
APP_SLOT_SIZE = 0x4_0000  # 256 KiB: imgtool --slot-size 0x40000

ROTPK_FIRST_ENTRY = 17
ROTPK_LEN = 64  # P-256 X||Y, entries 17-24


class ImageRejected(Exception):
    """The boot ROM will not run this image."""

    def __init__(self, reason: BootFailReason, detail: str) -> None:
        super().__init__(f"{reason.name}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class VerifiedImage:
    """What the ROM learned from an image it accepted."""

    header_size: int
    image_size: int
    version: tuple[int, int, int, int]  # major, minor, revision, build
    digest: bytes  # the SHA-256 that the signature covers
    initial_sp: int
    reset_vector: int


@dataclass(frozen=True)
class BootReport:
    """Outcome of the last reset's secure boot (for tests and the simulator's own tools).
    ``stage`` is "rom" when the ROM checked the application itself (no root key in KS OTP
    slots 0/1), "nubl2" when it verified NuBL2 with that root key and handed over to it: NuBL2's
    own verdict on the application then comes on UART0 (BOOT_FAIL) or by the application running."""

    booted: bool
    reason: BootFailReason | None
    detail: str
    image: VerifiedImage | None
    stage: str = "rom"


def rotpk_from_otp(otp: bytes | bytearray) -> bytes | None:
    """The SecureBoot public key X||Y from the OTP image, or None when its entries are blank."""
    off = ROTPK_FIRST_ENTRY * 8
    key = bytes(otp[off : off + ROTPK_LEN])
    return None if key == b"\xff" * ROTPK_LEN else key


def rom_root_key(board: Board) -> bytes | None:
    """The ROM's root public key X||Y from KeyStore OTP slots 0 (X) and 1 (Y), or None when secure
    boot is off (either slot empty). KEY words are least-significant word first."""
    return root_key_of(board.nv)


def root_key_of(nv: NvState) -> bytes | None:
    """``rom_root_key`` of a board's saved state."""
    x, y = nv.ks_otp[ROM_ROOT_SLOT_X], nv.ks_otp[ROM_ROOT_SLOT_Y]
    if x is None or y is None:
        return None
    return x.data[:32][::-1] + y.data[:32][::-1]


def predict_boot(nv: NvState) -> VerifiedImage:
    """The application the next reset would end up running, or ``ImageRejected``: with a root key
    the ROM checks NuBL2 and NuBL2 the application slot (0x00140000) against SecureBoot_PUB; without
    one the ROM's direct path checks the start of flash. For ``nusec sim show``; the boot itself is
    ``secure_boot`` (and the real NuBL2 code)."""
    root = root_key_of(nv)
    if root is None:
        return verify_image(bytes(nv.flash[:APP_SLOT_SIZE]), rotpk_from_otp(nv.otp))
    off = layout.NUBL2_BASE - memmap.FLASH_BASE
    nubl2 = bytes(nv.flash[off : off + layout.NUBL2_SLOT_SIZE])
    verify_image(nubl2, root, base=layout.NUBL2_BASE, key_name="KS OTP root key (slots 0/1)")
    off = layout.APP_BASE - memmap.FLASH_BASE
    app = bytes(nv.flash[off : off + layout.APP_SLOT_SIZE])
    return verify_image(app, rotpk_from_otp(nv.otp), base=layout.APP_BASE)


#: What the ROM reports for each way ``nucore.mcuboot.verify`` refuses an image.
_REASONS: dict[mcuboot.Part, BootFailReason] = {
    "magic": BootFailReason.NO_IMAGE,
    "header": BootFailReason.BAD_HEADER,
    "tlv": BootFailReason.BAD_TLV,
    "hash": BootFailReason.BAD_HASH,
    "keyhash": BootFailReason.BAD_KEYHASH,
    "no-signature": BootFailReason.NO_SIGNATURE,
    "signature": BootFailReason.BAD_SIGNATURE,
}


def verify_image(
    slot: bytes, rotpk_xy: bytes | None, *, base: int = APP_SLOT_BASE, key_name: str = "OTP SecureBoot key"
) -> VerifiedImage:
    """Check an image slot at ``base`` the way the ROM does; raise ``ImageRejected`` with the reason."""
    if rotpk_xy is None:
        raise ImageRejected(BootFailReason.NO_ROTPK, "OTP entries 17-24 (SecureBoot public key) are blank")
    try:
        rotpk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + rotpk_xy)
    except ValueError:
        raise ImageRejected(BootFailReason.NO_ROTPK, f"{key_name} is not a P-256 point") from None
    try:
        header = mcuboot.parse_header(slot)
    except mcuboot.McubootError as exc:
        if exc.part == "magic":
            raise ImageRejected(
                BootFailReason.NO_IMAGE, "no MCUboot image magic at the start of the slot"
            ) from None
        raise ImageRejected(BootFailReason.BAD_HEADER, str(exc)) from None
    hdr_size, img_size, flags, body_end = header.header_size, header.image_size, header.flags, header.body_end
    if hdr_size % 4 or flags != 0:
        raise ImageRejected(
            BootFailReason.BAD_HEADER, f"header size 0x{hdr_size:x} / flags 0x{flags:x} unsupported"
        )
    if img_size < 8:
        raise ImageRejected(BootFailReason.BAD_HEADER, f"image of {img_size} bytes does not fit the slot")
    try:
        parsed = mcuboot.verify(slot, rotpk)  # the one MCUboot checker (hash, KEYHASH, signature)
    except mcuboot.McubootError as exc:
        raise ImageRejected(_REASONS[exc.part], f"{exc} ({key_name})") from None
    digest = mcuboot.signed_digest(slot, parsed)

    sp, pc = struct.unpack_from("<II", slot, hdr_size)
    code_lo, code_hi = base + hdr_size, base + body_end
    if not (pc & 1) or not (code_lo <= (pc & ~1) < code_hi):
        raise ImageRejected(
            BootFailReason.BAD_VECTORS, f"reset vector 0x{pc:08x} is not Thumb code in the image"
        )
    if not (memmap.SRAM_BASE < sp <= memmap.SRAM_BASE + memmap.SRAM_SIZE):
        raise ImageRejected(BootFailReason.BAD_VECTORS, f"initial SP 0x{sp:08x} is not in SRAM")
    return VerifiedImage(hdr_size, img_size, header.version, digest, sp, pc)


_REPORTS: weakref.WeakKeyDictionary[Board, BootReport] = weakref.WeakKeyDictionary()


def secure_boot(board: Board) -> None:
    """The ROM's reset path (installed as ``board.boot_rom``)."""
    root = rom_root_key(board)
    if root is not None:
        _boot_nubl2(board, root)
        return
    slot = bytes(board.nv.flash[APP_SLOT_BASE - memmap.FLASH_BASE :][:APP_SLOT_SIZE])
    try:
        image = verify_image(slot, rotpk_from_otp(board.nv.otp))
    except ImageRejected as exc:
        board.note("boot.rom", f"application refused: {exc}")
        _refuse(board, exc)
        return
    board.note("boot.rom", "application verified with OTP SecureBoot_PUB (no root key in KS OTP slots 0/1)")
    board.debug.vtor = APP_SLOT_BASE + image.header_size
    board.cpu.reset_registers(image.initial_sp, image.reset_vector & ~1)
    board.state = CoreState.RUNNING
    _REPORTS[board] = BootReport(True, None, "image verified", image)
    major, minor, rev, build = image.version
    board.nv.last_boot = BootRecord(True, None, "image verified", f"{major}.{minor}.{rev}+{build}")


def _boot_nubl2(board: Board, root_xy: bytes) -> None:
    """Secure boot on: NuBL2 at the APROM base must verify with the KS OTP root key."""
    off = layout.NUBL2_BASE - memmap.FLASH_BASE
    slot = bytes(board.nv.flash[off : off + layout.NUBL2_SLOT_SIZE])
    try:
        image = verify_image(slot, root_xy, base=layout.NUBL2_BASE, key_name="KS OTP root key (slots 0/1)")
    except ImageRejected as exc:
        board.note("boot.rom", f"NuBL2 refused: {exc}")
        _refuse(board, exc, stage="rom")
        return
    board.note("boot.rom", "NuBL2 verified with the root key in KS OTP slots 0/1; starting it")
    board.debug.vtor = layout.NUBL2_BASE + image.header_size
    board.cpu.reset_registers(image.initial_sp, image.reset_vector & ~1)
    board.state = CoreState.RUNNING
    _REPORTS[board] = BootReport(True, None, "NuBL2 verified", image, stage="nubl2")
    major, minor, rev, build = image.version
    board.nv.last_boot = BootRecord(True, None, "NuBL2 verified", f"{major}.{minor}.{rev}+{build}")


def _refuse(board: Board, exc: ImageRejected, stage: str = "rom") -> None:
    from nusim.uart import uart_of

    board.cpu.reset_registers(0, APP_SLOT_BASE)
    board.enter_lockup(f"secure boot refused the image: {exc}")
    _REPORTS[board] = BootReport(False, exc.reason, str(exc), None, stage=stage)
    board.nv.last_boot = BootRecord(False, exc.reason.name, str(exc), None)
    try:
        uart = uart_of(board)
    except RuntimeError:
        return
    frame = boot_fail_frame(exc.reason)
    uart.emit(frame)
    uart.boot_fail_reply = frame


def last_boot(board: Board) -> BootReport | None:
    """What secure boot decided at the board's last reset (``board.nv.last_boot`` keeps a summary
    in the state file, saved with the board's next NV write or when it closes)."""
    return _REPORTS.get(board)


def install(board: Board) -> None:
    """Board extension hook: this ROM runs at every reset."""
    board.boot_rom = secure_boot
