"""Wire format of the board protocol (docs/board-protocol.md): framing, command and status codes.

Shared by the host client (``nusec.board.channel``) and the simulated boot ROM, which answers in
the same framing when it refuses an image. The board-side twin is
``snippets/firmware/board_proto.h``; the two must agree byte for byte.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

SOF = 0xA5
MAX_PAYLOAD = 256
RESPONSE_BIT = 0x80
PROTOCOL_VERSION = 1
HEADER_LEN = 4  # SOF, cmd, len u16
CRC_LEN = 4


class Command(enum.IntEnum):
    """Request codes; a response carries ``code | 0x80``."""

    VERSION = 0x01
    UID = 0x02
    STATUS = 0x03
    ECDH_BEGIN = 0x10
    ECDH_FINISH = 0x11


class Unsolicited(enum.IntEnum):
    """Response codes that answer no particular request."""

    FRAME_ERROR = 0xFF  # the board rejected a frame (CRC, length, timeout)
    BOOT_FAIL = 0xFE  # the boot ROM refused the firmware image


class Status(enum.IntEnum):
    """First payload byte of every response."""

    OK = 0x00
    ERR_CRC = 0x01
    ERR_LENGTH = 0x02
    ERR_UNKNOWN_CMD = 0x03
    ERR_TIMEOUT = 0x04
    ERR_STATE = 0x05
    ERR_NO_IDENTITY = 0x06
    ERR_BAD_SIGNATURE = 0x07
    ERR_KEY_CONFIRM = 0x08
    ERR_CRYPTO = 0x09
    ERR_NO_ROTPK = 0x0A
    ERR_BAD_POINT = 0x0B
    ERR_HW = 0x0C
    ERR_BOOT_FAIL = 0x20


class BootFailReason(enum.IntEnum):
    """Second payload byte of a BOOT_FAIL frame: why the boot ROM refused the image."""

    NO_ROTPK = 0x01  # OTP entries 17-24 are blank: no key to verify against
    NO_IMAGE = 0x02  # no MCUboot header magic at the start of the application slot
    BAD_HEADER = 0x03  # header sizes/flags out of range for the slot
    BAD_TLV = 0x04  # TLV area missing or malformed
    BAD_HASH = 0x05  # SHA-256 TLV missing or does not match the image
    NO_SIGNATURE = 0x06  # no ECDSA-P256 signature TLV
    BAD_SIGNATURE = 0x07  # signature does not verify with the OTP key
    BAD_VECTORS = 0x08  # verified image, but its vector table is unusable
    BAD_KEYHASH = 0x09  # KEYHASH TLV names another key than the OTP SecureBoot key


class FrameError(Exception):
    """Bytes on the line that are not a well-formed frame."""


@dataclass(frozen=True)
class Frame:
    cmd: int
    payload: bytes

    @property
    def status(self) -> int:
        """Status byte of a response frame (``FrameError`` if the payload is empty)."""
        if not self.payload:
            raise FrameError(f"response 0x{self.cmd:02x} has no status byte")
        return self.payload[0]


def frame_crc(cmd: int, payload: bytes) -> int:
    """CRC-32/IEEE over cmd, the little-endian length and the payload."""
    return zlib.crc32(struct.pack("<BH", cmd, len(payload)) + payload) & 0xFFFF_FFFF


def encode(cmd: int, payload: bytes = b"") -> bytes:
    """One frame on the wire."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"command code {cmd} out of range")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    head = struct.pack("<BBH", SOF, cmd, len(payload))
    return head + payload + struct.pack("<I", frame_crc(cmd, payload))


def boot_fail_frame(reason: BootFailReason) -> bytes:
    """The fixed frame the boot ROM sends when it refuses the firmware image."""
    return encode(Unsolicited.BOOT_FAIL, bytes([Status.ERR_BOOT_FAIL, reason]))


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, take complete frames out.

    Bytes before a start-of-frame are skipped (line noise, a half frame after a reset). A frame
    whose CRC does not match raises ``FrameError`` after consuming it.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> Frame | None:
        """A complete frame, or None if more bytes are needed."""
        start = self._buf.find(SOF)
        if start < 0:
            self._buf.clear()
            return None
        del self._buf[:start]
        if len(self._buf) < HEADER_LEN:
            return None
        _, cmd, length = struct.unpack_from("<BBH", self._buf)
        if length > MAX_PAYLOAD:
            del self._buf[:1]
            raise FrameError(f"frame announces {length} payload bytes (limit {MAX_PAYLOAD})")
        total = HEADER_LEN + length + CRC_LEN
        if len(self._buf) < total:
            return None
        payload = bytes(self._buf[HEADER_LEN : HEADER_LEN + length])
        (crc,) = struct.unpack_from("<I", self._buf, HEADER_LEN + length)
        del self._buf[:total]
        if crc != frame_crc(cmd, payload):
            raise FrameError(f"CRC mismatch in frame 0x{cmd:02x}")
        return Frame(cmd, payload)

    def pending(self) -> int:
        """Bytes held that do not form a complete frame yet."""
        return len(self._buf)
