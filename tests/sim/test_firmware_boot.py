"""Secure boot: the boot ROM model runs only an image signed with the key in OTP entries 17-24,
and reports a refusal on the UART."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from nuboard.protocol import BootFailReason, Status, Unsolicited, boot_fail_frame
from nusec.board.channel import BoardBootFailed, BoardChannel
from nusim import memmap
from nusim.board import Board, CoreState
from nusim.bootrom import ImageRejected, last_boot, verify_image
from nusim.uart import UartLink, uart_of
from tests.sim.firmware_board import FIRMWARE, burn_rotpk, imgtool_sign, program, write_key_pem, xy


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, key: ec.EllipticCurvePrivateKey) -> bytes:
    d = tmp_path_factory.mktemp("fw")
    return imgtool_sign(FIRMWARE, d / "signed.bin", write_key_pem(key, d / "k.pem"))


def boot(tmp_path: Path, rotpk: ec.EllipticCurvePublicKey | None, image: bytes | None) -> Board:
    board = Board.open("sb", tmp_path)
    if rotpk is not None:
        burn_rotpk(board, rotpk)
    if image is not None:
        program(board, memmap.FLASH_BASE, image)
    uart_of(board).host_take()  # forget what the power-on boot said
    board.reset()
    return board


def tlv_offsets(image: bytes) -> dict[int, tuple[int, int]]:
    """Offset and length of each unprotected TLV value (type -> (offset, length))."""
    _, _, hdr, prot, size = struct.unpack_from("<IIHHI", image)
    off = hdr + size + prot
    _, total = struct.unpack_from("<HH", image, off)
    end, off = off + total, off + 4
    out = {}
    while off < end:
        kind, length = struct.unpack_from("<HH", image, off)
        out[kind] = (off + 4, length)
        off += 4 + length
    return out


def test_signed_image_boots(tmp_path: Path, key: ec.EllipticCurvePrivateKey, signed: bytes) -> None:
    with boot(tmp_path, key.public_key(), signed) as board:
        report = last_boot(board)
        assert report is not None and report.booted and report.image is not None
        assert report.image.version == (1, 0, 0, 0)
        assert board.debug.vtor == memmap.FLASH_BASE + 0x20
        assert BoardChannel(UartLink(board)).version().version == (1, 0, 0)


def flip(at: Callable[[bytes], int]) -> Callable[[bytes], bytes]:
    def change(image: bytes) -> bytes:
        i = at(image)
        return image[:i] + bytes([image[i] ^ 0x01]) + image[i + 1 :]

    return change


ONE_BYTE_CHANGES = {
    "code": (flip(lambda img: 0x20 + 0x200), BootFailReason.BAD_HASH),
    "vector_table": (flip(lambda img: 0x24), BootFailReason.BAD_HASH),
    "header_version": (flip(lambda img: 20), BootFailReason.BAD_HASH),
    "last_code_byte": (
        flip(lambda img: 0x20 + struct.unpack_from("<I", img, 12)[0] - 1),
        BootFailReason.BAD_HASH,
    ),
    "hash_tlv": (flip(lambda img: tlv_offsets(img)[0x10][0]), BootFailReason.BAD_HASH),
    "signature_tlv": (flip(lambda img: sum(tlv_offsets(img)[0x22]) - 1), BootFailReason.BAD_SIGNATURE),
    "keyhash_tlv": (flip(lambda img: tlv_offsets(img)[0x01][0] + 5), BootFailReason.BAD_KEYHASH),
}


@pytest.mark.parametrize("where", sorted(ONE_BYTE_CHANGES))
def test_one_byte_change_stops_the_boot(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, signed: bytes, where: str
) -> None:
    change, reason = ONE_BYTE_CHANGES[where]
    altered = change(signed)
    assert len(altered) == len(signed) and altered != signed
    with boot(tmp_path, key.public_key(), altered) as board:
        assert board.state is CoreState.LOCKUP
        report = last_boot(board)
        assert report is not None and not report.booted and report.reason is reason
        uart = uart_of(board)
        assert uart.host_take() == boot_fail_frame(reason)  # the ROM's console says why
        with pytest.raises(BoardBootFailed) as exc:
            BoardChannel(UartLink(board, timeout=0.5)).version()
        assert exc.value.reason is reason and exc.value.status == Status.ERR_BOOT_FAIL


def test_keyhash_of_another_key_is_refused_as_the_host_refuses_it(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, signed: bytes
) -> None:
    """The ROM checks KEYHASH as ``nusec.provision.firmware.verify_mcuboot_image`` does: an image
    whose KEYHASH names another key stops with BAD_KEYHASH even though its signature verifies."""
    from nusec.provision.errors import VerificationError
    from nusec.provision.firmware import verify_mcuboot_image

    start, length = tlv_offsets(signed)[0x01]
    assert length == 32
    other = bytes(32)
    altered = signed[:start] + other + signed[start + 32 :]
    with pytest.raises(VerificationError, match="KEYHASH"):
        verify_mcuboot_image(altered, xy(key.public_key()))
    with boot(tmp_path, key.public_key(), altered) as board:
        report = last_boot(board)
        assert report is not None and report.reason is BootFailReason.BAD_KEYHASH


def test_unsigned_image_is_refused(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    unsigned = imgtool_sign(FIRMWARE, tmp_path / "unsigned.bin", None)
    with boot(tmp_path, key.public_key(), unsigned) as board:
        assert last_boot(board).reason is BootFailReason.NO_SIGNATURE  # type: ignore[union-attr]


def test_image_signed_by_another_key_is_refused(tmp_path: Path, signed: bytes) -> None:
    """imgtool's KEYHASH names the signing key, so the ROM stops there, before the signature."""
    other = ec.generate_private_key(ec.SECP256R1())
    with boot(tmp_path, other.public_key(), signed) as board:
        assert last_boot(board).reason is BootFailReason.BAD_KEYHASH  # type: ignore[union-attr]


def test_no_rotpk_in_otp_means_no_boot(tmp_path: Path, signed: bytes) -> None:
    with boot(tmp_path, None, signed) as board:
        assert last_boot(board).reason is BootFailReason.NO_ROTPK  # type: ignore[union-attr]
        assert uart_of(board).host_take()[1] == Unsolicited.BOOT_FAIL


def test_blank_flash_is_no_image(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    with boot(tmp_path, key.public_key(), None) as board:
        assert last_boot(board).reason is BootFailReason.NO_IMAGE  # type: ignore[union-attr]


def test_secure_boot_decision_persists_across_power_cycles(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, signed: bytes
) -> None:
    boot(tmp_path, key.public_key(), signed).close()
    with Board.open("sb", tmp_path) as board:  # power on again from the saved NV state
        report = last_boot(board)
        assert report is not None and report.booted


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda img: img[: tlv_offsets(img)[0x10][0] - 8], BootFailReason.BAD_TLV),  # TLV area cut off
        (lambda img: img[:12] + struct.pack("<I", 0x7FFF_0000) + img[16:], BootFailReason.BAD_HEADER),
        (
            lambda img: img[:16] + struct.pack("<I", 0x20) + img[20:],
            BootFailReason.BAD_HEADER,
        ),  # RAM_LOAD flag
    ],
)
def test_malformed_images_are_rejected_with_a_reason(
    key: ec.EllipticCurvePrivateKey, signed: bytes, mangle: Callable[[bytes], bytes], reason: BootFailReason
) -> None:
    slot = mangle(signed).ljust(0x40000, b"\xff")
    with pytest.raises(ImageRejected) as exc:
        verify_image(slot, xy(key.public_key()))
    assert exc.value.reason is reason


@pytest.mark.parametrize(("header_size", "boots"), [(0x20, True), (0x200, False)])
def test_image_signed_by_the_service_code(
    tmp_path: Path,
    key: ec.EllipticCurvePrivateKey,
    header_size: int,
    boots: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The OEM service's MCUboot signer (pki.service.firmware, docs/firmware-image.md) and this
    boot ROM agree on the format; the digest is signed here by a file key instead of the HSM.
    The reference firmware is linked for a 0x20 header: with a 0x200 header its vector table is
    elsewhere, so the service refuses to sign it, and even signed (the service's check switched
    off here) the ROM refuses it rather than jump into the weeds."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    from pki.service import firmware as service_firmware

    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def sign() -> bytes:
        return service_firmware.sign_image(
            FIRMWARE.read_bytes(),
            public_key_der=spki,
            sign_digest=lambda digest: key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))),
            header_size=header_size,
            slot_address=memmap.FLASH_BASE,  # the ROM's direct path: a board without a root key
            max_size=0x40000,
        ).image

    if not boots:
        with pytest.raises(service_firmware.FirmwareError, match="not a Thumb address inside the image"):
            sign()
        monkeypatch.setattr(service_firmware, "check_cortex_m_vectors", lambda body, base: None)
    image = sign()
    with boot(tmp_path, key.public_key(), image) as board:
        report = last_boot(board)
        assert report is not None and report.booted is boots, report
        if boots:
            assert BoardChannel(UartLink(board)).uid() == board.uid
        else:
            assert report.reason is BootFailReason.BAD_VECTORS
