"""The host client's own edges: framing it decodes, answers it refuses, ports it cannot open.
A scripted line stands in for the board here; the real firmware is in the other test_firmware_* files."""

from __future__ import annotations

import struct
import zlib

import pytest

from nuboard.protocol import (
    BootFailReason,
    Command,
    Frame,
    FrameDecoder,
    FrameError,
    Status,
    boot_fail_frame,
    encode,
)
from nusec.board.channel import BoardBootFailed, BoardChannel, BoardError, ChannelError


class ScriptedLine:
    """Answers each write with the next canned reply; records what was sent."""

    def __init__(self, *replies: bytes) -> None:
        self.replies = list(replies)
        self.sent: list[bytes] = []
        self.pending = b""

    def write(self, data: bytes, /) -> int:
        self.sent.append(bytes(data))
        if self.replies:
            self.pending += self.replies.pop(0)
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def close(self) -> None:
        return None


def test_encode_matches_zlib_crc32_framing() -> None:
    raw = encode(Command.UID, b"ab")
    assert raw[:4] == bytes([0xA5, 0x02, 0x02, 0x00])
    assert struct.unpack("<I", raw[-4:])[0] == zlib.crc32(bytes([0x02, 0x02, 0x00]) + b"ab")


def test_decoder_skips_noise_and_rejects_bad_crc() -> None:
    dec = FrameDecoder()
    good = encode(0x82, b"\x00" + bytes(12))
    dec.feed(b"\x01\x02" + good[:5])
    assert dec.next_frame() is None
    dec.feed(good[5:])
    assert dec.next_frame() == Frame(0x82, b"\x00" + bytes(12))
    dec.feed(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(FrameError):
        dec.next_frame()


def test_stale_answers_are_skipped() -> None:
    stale = encode(Command.VERSION | 0x80, b"\x00" + bytes(7))
    uid = bytes(range(12))
    line = ScriptedLine(stale + encode(Command.UID | 0x80, b"\x00" + uid))
    assert BoardChannel(line, timeout=0.2).uid() == uid
    assert line.sent == [encode(Command.UID)]


def test_error_status_names_the_problem() -> None:
    line = ScriptedLine(encode(Command.ECDH_FINISH | 0x80, bytes([Status.ERR_BAD_SIGNATURE])))
    with pytest.raises(BoardError, match="ECDH_FINISH: ERR_BAD_SIGNATURE") as exc:
        BoardChannel(line, timeout=0.2).ecdh_finish(b"\x04" + bytes(64), bytes(64), bytes(16))
    assert exc.value.status == Status.ERR_BAD_SIGNATURE


def test_boot_fail_frame_raises_boot_failed() -> None:
    line = ScriptedLine(boot_fail_frame(BootFailReason.BAD_SIGNATURE))
    with pytest.raises(BoardBootFailed, match="BAD_SIGNATURE") as exc:
        BoardChannel(line, timeout=0.2).version()
    assert exc.value.reason is BootFailReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # silence
        encode(Command.UID | 0x80, b"\x00" + bytes(11)),  # one byte short
        encode(Command.UID | 0x80, b"\x00" + bytes(12))[:-1] + b"\x00",  # corrupted CRC
    ],
)
def test_unusable_answers_raise_channel_error(reply: bytes) -> None:
    with pytest.raises(ChannelError):
        BoardChannel(ScriptedLine(reply), timeout=0.2).uid()


def test_wrong_sized_ecdh_finish_is_refused_before_sending() -> None:
    line = ScriptedLine()
    with pytest.raises(ValueError, match="65-byte point"):
        BoardChannel(line).ecdh_finish(bytes(64), bytes(64), bytes(16))
    assert line.sent == []


def test_unopenable_port_is_a_channel_error() -> None:
    with pytest.raises(ChannelError, match="cannot open board UART"):
        BoardChannel.open("/dev/nonexistent-nusec-uart")
