"""The boot chain of the part: the mask ROM verifies NuBL2 (snippets/nubl2, real code) with the
root key in KeyStore OTP slots 0/1; NuBL2 verifies the application with SecureBoot_PUB in OTP
entries 17-24, KEYHASH included. A one-byte change stops the boot at the stage that owns it.

The root key is provisioned here from a test key (the OEM's NuBL2 signing key lives in the HSM;
the provisioning flow does not burn slots 0/1 yet, see docs/sim-board.md)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from nuboard import layout
from nuboard.keyslots import ROM_ROOT_SLOT_X, ROM_ROOT_SLOT_Y
from nuboard.protocol import BootFailReason
from nusec.board.channel import BoardBootFailed, BoardChannel
from nusim import keystore, memmap
from nusim.board import Board, CoreState
from nusim.bootrom import last_boot
from nusim.uart import UartLink
from tests.sim.firmware_board import ROOT, imgtool_sign, program, write_key_pem, xy
from tests.sim.sim_helpers import ks_open, ks_wait

BIN = ROOT / "nusec" / "board" / "bin"


@dataclass(frozen=True)
class Chain:
    root: ec.EllipticCurvePrivateKey  # the NuBL2 signing key (the OEM's, in the HSM in production)
    secure_boot: ec.EllipticCurvePrivateKey  # SecureBoot_PUB's private half
    nubl2: bytes
    app: bytes


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    d = tmp_path_factory.mktemp("chain")
    root, sb = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    nubl2 = imgtool_sign(
        BIN / "nubl2.bin", d / "nubl2.img", write_key_pem(root, d / "root.pem"), header_size="0x400"
    )
    app = imgtool_sign(
        BIN / "firmware_bl2.bin", d / "app.img", write_key_pem(sb, d / "sb.pem"), header_size="0x400"
    )
    return Chain(root, sb, nubl2, app)


def write_rom_root_key(board: Board, xy_: bytes) -> None:
    """KS_WriteOTP(0/1, KS_META_256 | KS_META_ECC | KS_META_BOOT, key) from the debugger: X into
    slot 0, Y into slot 1, KEY words least-significant word first."""
    ks_open(board)
    for slot, half in ((ROM_ROOT_SLOT_X, xy_[:32]), (ROM_ROOT_SLOT_Y, xy_[32:])):
        value = int.from_bytes(half, "big")
        for i in range(8):
            board.write32(memmap.KS_BASE + keystore.KEY0 + 4 * i, (value >> (32 * i)) & 0xFFFF_FFFF)
        meta = (
            keystore.make_meta(dst=keystore.MEM_OTP, owner=keystore.OWNER_ECC, number=slot) | keystore.META_BS
        )
        board.write32(memmap.KS_BASE + keystore.METADATA, meta)
        board.write32(memmap.KS_BASE + keystore.CTL, (keystore.OP_WRITE << 1) | keystore.CTL_START)
        assert not ks_wait(board) & keystore.STS_EIF


def build(
    tmp_path: Path,
    c: Chain,
    *,
    nubl2: bytes | None = None,
    app: bytes | None = None,
    sb_xy: bytes | None = None,
    root_xy: bytes | None = None,
) -> Board:
    board = Board.open("chain", tmp_path)
    program(
        board, memmap.OTP_BASE + layout.OTP_SECURE_BOOT_PUB_ENTRY * 8, sb_xy or xy(c.secure_boot.public_key())
    )
    program(board, layout.NUBL2_BASE, nubl2 or c.nubl2)
    program(board, layout.APP_BASE, app or c.app)
    write_rom_root_key(board, root_xy or xy(c.root.public_key()))
    board.reset()
    return board


def tlv(image: bytes, kind: int) -> int:
    """Offset of the value of the first unprotected TLV of ``kind``."""
    _, _, hdr, prot, size = struct.unpack_from("<IIHHI", image)
    off = hdr + size + prot + 4
    while True:
        k, n = struct.unpack_from("<HH", image, off)
        if k == kind:
            return int(off + 4)
        off += 4 + n


def flip(image: bytes, at: int) -> bytes:
    return image[:at] + bytes([image[at] ^ 0x01]) + image[at + 1 :]


def test_rom_nubl2_app(tmp_path: Path, chain: Chain) -> None:
    with build(tmp_path, chain) as board:
        report = last_boot(board)
        assert report is not None and report.booted and report.stage == "nubl2"
        assert BoardChannel(UartLink(board)).version().version == (1, 0, 0)  # the app answers
        assert board.debug.vtor == layout.APP_BASE + layout.APP_HEADER_SIZE  # set by NuBL2's code
        kinds = [k for k, _ in board.trace]
        assert kinds.index("boot.rom") < kinds.index("boot.vtor")
        assert ("sys.unlock", "SYS_REGLCTL unlocked (59h 16h 88h) by the cpu") in board.trace  # NuBL2's ISP


Change = tuple[Callable[["Chain"], bytes], BootFailReason]

ROM_STAGE: dict[str, Change] = {
    "nubl2_code": (lambda c: flip(c.nubl2, 0x400 + 0x100), BootFailReason.BAD_HASH),
    "nubl2_keyhash": (lambda c: flip(c.nubl2, tlv(c.nubl2, 0x01) + 3), BootFailReason.BAD_KEYHASH),
    "nubl2_signature": (lambda c: flip(c.nubl2, tlv(c.nubl2, 0x22) + 20), BootFailReason.BAD_SIGNATURE),
}


@pytest.mark.parametrize("where", sorted(ROM_STAGE))
def test_one_byte_change_in_nubl2_stops_the_rom(tmp_path: Path, chain: Chain, where: str) -> None:
    change, reason = ROM_STAGE[where]
    with build(tmp_path, chain, nubl2=change(chain)) as board:
        report = last_boot(board)
        assert report is not None and not report.booted and report.stage == "rom"
        assert report.reason is reason, report
        assert board.state is CoreState.LOCKUP


APP_STAGE: dict[str, Change] = {
    "app_code": (lambda c: flip(c.app, 0x400 + 0x80), BootFailReason.BAD_HASH),
    "app_keyhash": (lambda c: flip(c.app, tlv(c.app, 0x01)), BootFailReason.BAD_KEYHASH),
    "app_signature": (lambda c: flip(c.app, tlv(c.app, 0x22) + 30), BootFailReason.BAD_SIGNATURE),
}


def _nubl2_refusal(board: Board) -> BootFailReason:
    report = last_boot(board)
    assert report is not None and report.booted and report.stage == "nubl2"  # the ROM passed NuBL2
    with pytest.raises(BoardBootFailed) as exc:
        BoardChannel(UartLink(board, timeout=2.0)).version()
    assert board.debug.vtor == layout.NUBL2_BASE + layout.NUBL2_HEADER_SIZE  # never handed over
    return BootFailReason(exc.value.reason)


@pytest.mark.parametrize("where", sorted(APP_STAGE))
def test_one_byte_change_in_the_app_stops_nubl2(tmp_path: Path, chain: Chain, where: str) -> None:
    change, reason = APP_STAGE[where]
    with build(tmp_path, chain, app=change(chain)) as board:
        assert _nubl2_refusal(board) is reason


def test_one_byte_change_in_secure_boot_pub_stops_nubl2(tmp_path: Path, chain: Chain) -> None:
    """OTP entries 17-24 one byte off: NuBL2's KEYHASH check names the mismatch."""
    sb = bytearray(xy(chain.secure_boot.public_key()))
    sb[40] ^= 0x01
    with build(tmp_path, chain, sb_xy=bytes(sb)) as board:
        assert _nubl2_refusal(board) is BootFailReason.BAD_KEYHASH


def test_one_byte_change_in_the_rom_root_key_stops_the_rom(tmp_path: Path, chain: Chain) -> None:
    root = bytearray(xy(chain.root.public_key()))
    root[5] ^= 0x01
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + bytes(root))
        expected = BootFailReason.BAD_KEYHASH
    except ValueError:
        expected = BootFailReason.NO_ROTPK  # the changed point is not on P-256 (almost always)
    with build(tmp_path, chain, root_xy=bytes(root)) as board:
        report = last_boot(board)
        assert report is not None and not report.booted and report.stage == "rom"
        assert report.reason is expected
