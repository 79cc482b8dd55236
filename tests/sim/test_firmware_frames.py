"""Malformed UART frames get a defined error answer from the firmware, never a hang, and the
board keeps serving afterwards."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuboard.protocol import SOF, Command, Frame, FrameDecoder, Status, Unsolicited, encode
from nusec.board.channel import BoardChannel
from nusim import memmap
from nusim.board import Board
from nusim.uart import UartLink
from tests.sim.firmware_board import FIRMWARE, burn_rotpk, imgtool_sign, program, write_key_pem


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    d = tmp_path_factory.mktemp("fw")
    key = ec.generate_private_key(ec.SECP256R1())
    return key, imgtool_sign(FIRMWARE, d / "signed.bin", write_key_pem(key, d / "k.pem"))


@pytest.fixture(scope="module")
def link(
    tmp_path_factory: pytest.TempPathFactory, image: tuple[ec.EllipticCurvePrivateKey, bytes]
) -> Iterator[UartLink]:
    """One running board shared by this module's tests: each test leaves it serving."""
    key, signed = image
    board = Board.open("frames", tmp_path_factory.mktemp("sim"))
    try:
        burn_rotpk(board, key.public_key())
        program(board, memmap.FLASH_BASE, signed)
        board.reset()
        yield UartLink(board, timeout=0.5)
    finally:
        board.close()


def answers(link: UartLink, raw: bytes) -> list[Frame]:
    """Send raw bytes; collect every frame the board sends until the line goes quiet."""
    link.write(raw)
    dec = FrameDecoder()
    frames = []
    while chunk := link.read(64):
        dec.feed(chunk)
        while (frame := dec.next_frame()) is not None:
            frames.append(frame)
    assert dec.pending() == 0, "board left a partial frame on the line"
    return frames


def still_serving(link: UartLink) -> None:
    assert BoardChannel(link, timeout=5.0).version().name == "nusec-ref-fw"


def test_bad_crc_is_a_frame_error_and_an_immediate_retry_works(link: UartLink) -> None:
    good = encode(Command.VERSION)
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    frames = answers(link, bad + good)  # the retry follows on the heels of the bad frame
    assert [f.cmd for f in frames] == [Unsolicited.FRAME_ERROR, Command.VERSION | 0x80]
    assert [f.status for f in frames] == [Status.ERR_CRC, Status.OK]


def test_oversized_length_is_refused_without_waiting_for_the_payload(link: UartLink) -> None:
    raw = struct.pack("<BBH", SOF, Command.VERSION, 0xFFFF) + b"\x00" * 40
    assert answers(link, raw) == [Frame(Unsolicited.FRAME_ERROR, bytes([Status.ERR_LENGTH]))]
    still_serving(link)


def test_unknown_command(link: UartLink) -> None:
    assert answers(link, encode(0x42, b"xyz")) == [Frame(0x42 | 0x80, bytes([Status.ERR_UNKNOWN_CMD]))]
    still_serving(link)


@pytest.mark.parametrize(("cmd", "payload"), [(Command.VERSION, b"\x00"), (Command.ECDH_FINISH, bytes(10))])
def test_wrong_payload_length_for_the_command(link: UartLink, cmd: int, payload: bytes) -> None:
    assert answers(link, encode(cmd, payload)) == [Frame(cmd | 0x80, bytes([Status.ERR_LENGTH]))]
    still_serving(link)


@pytest.mark.parametrize("cut", [1, 3, 6])
def test_truncated_frame_times_out_with_an_answer(link: UartLink, cut: int) -> None:
    raw = encode(Command.ECDH_FINISH, bytes(145))[:cut]
    assert answers(link, raw) == [Frame(Unsolicited.FRAME_ERROR, bytes([Status.ERR_TIMEOUT]))]
    still_serving(link)


def test_line_noise_before_a_frame_is_skipped(link: UartLink) -> None:
    frames = answers(link, b"\x00\x13\x37\xff" + encode(Command.UID))
    assert [f.cmd for f in frames] == [Command.UID | 0x80] and frames[0].status == Status.OK


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=300))
def test_arbitrary_bytes_never_wedge_the_board(link: UartLink, garbage: bytes) -> None:
    for frame in answers(link, garbage):
        assert frame.cmd == Unsolicited.FRAME_ERROR or frame.cmd & 0x80
        assert frame.status != Status.OK or frame.cmd in {c | 0x80 for c in Command}
    still_serving(link)


def test_refused_board_answers_every_frame_with_boot_fail(tmp_path: Path) -> None:
    with Board.open("blank", tmp_path) as board:  # no ROTPK, no image
        link = UartLink(board, timeout=0.5)
        for _ in range(2):
            frames = answers(link, encode(Command.VERSION))
            assert [(f.cmd, f.payload[0]) for f in frames] == [(Unsolicited.BOOT_FAIL, Status.ERR_BOOT_FAIL)]
