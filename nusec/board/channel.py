"""Host-side client of the board protocol (docs/board-protocol.md) over a board's UART.

The same client talks to a real board through a serial port and to a simulated one through its
pseudo-terminal, TCP socket (``socket://127.0.0.1:PORT``) or the in-process link
(``nusim.uart.UartLink``): anything with pyserial's ``write``/``read``/``close``.

Every method sends one request and waits for its response. A board that refused to boot answers
with BOOT_FAIL (``BoardBootFailed``); an error status raises ``BoardError`` naming it; a silent
or garbled line raises ``ChannelError``. Nothing here holds key material: the ECDH exchange only
moves public values, signatures and key-confirmation tags.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Protocol

from nuboard.protocol import (
    CRC_LEN,
    HEADER_LEN,
    MAX_PAYLOAD,
    RESPONSE_BIT,
    SOF,
    BootFailReason,
    Command,
    Frame,
    Status,
    Unsolicited,
    encode,
    frame_crc,
)

UID_LEN = 12
POINT_LEN = 65  # SEC1 uncompressed P-256 point
SIG_LEN = 64  # raw r||s
KC_LEN = 16
DEFAULT_TIMEOUT = 5.0


class ByteLink(Protocol):
    """The part of a pyserial port the channel uses."""

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def close(self) -> None: ...


class ChannelError(Exception):
    """No usable answer: timeout, garbled frame, or a response that makes no sense."""


class BoardError(Exception):
    """The board answered with an error status."""

    def __init__(self, command: str, status: int) -> None:
        try:
            name = Status(status).name
        except ValueError:
            name = f"0x{status:02x}"
        super().__init__(f"board refused {command}: {name}")
        self.status = status


class BoardBootFailed(BoardError):
    """The boot ROM refused the firmware image; nothing but the ROM is listening."""

    def __init__(self, reason: int) -> None:
        super().__init__("boot", Status.ERR_BOOT_FAIL)
        try:
            self.reason: BootFailReason | int = BootFailReason(reason)
            why = self.reason.name
        except ValueError:
            self.reason = reason
            why = f"0x{reason:02x}"
        self.args = (f"board failed secure boot: {why}",)


@dataclass(frozen=True)
class FirmwareInfo:
    protocol: int
    version: tuple[int, int, int]
    max_payload: int
    name: str


@dataclass(frozen=True)
class BoardStatus:
    session: str  # "idle", "pending" (ECDH_BEGIN done) or "established" (AES_NuLink3 in KS)
    rotpk_present: bool  # OTP entries 17-24 hold a SecureBoot key
    aes_slot: int | None  # KS SRAM slot of AES_NuLink3 once established


@dataclass(frozen=True)
class EcdhOffer:
    """The board's half of the exchange (docs/key-agreement.md step 1)."""

    board_eph: bytes  # 65 bytes, 04||X||Y
    board_sig: bytes  # 64 bytes r||s over H("NuSec-ECDH-board-v1" || uid || board_eph)


_SESSIONS = {0: "idle", 1: "pending", 2: "established"}


def _command_name(cmd: int) -> str:
    try:
        return Command(cmd).name
    except ValueError:
        return f"0x{cmd:02x}"


class BoardChannel:
    """Typed requests to the firmware on one board."""

    def __init__(self, link: ByteLink, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.link = link
        self.timeout = timeout

    @classmethod
    def open(cls, port: str, *, baudrate: int = 115200, timeout: float = DEFAULT_TIMEOUT) -> BoardChannel:
        """Open a serial port, a pty path or a pyserial URL such as ``socket://127.0.0.1:5000``."""
        import serial

        try:
            link = serial.serial_for_url(port, baudrate=baudrate, timeout=0.1)
        except (serial.SerialException, ValueError) as exc:
            raise ChannelError(f"cannot open board UART {port!r}: {exc}") from None
        return cls(link, timeout)

    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> BoardChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------------
    def version(self) -> FirmwareInfo:
        data = self.request(Command.VERSION)
        if len(data) < 7:
            raise ChannelError(f"VERSION answer of {len(data)} bytes is too short")
        proto, major, minor, rev, max_payload = struct.unpack_from("<BBBHH", data)
        return FirmwareInfo(proto, (major, minor, rev), max_payload, data[7:].decode("ascii", "replace"))

    def uid(self) -> bytes:
        return self._exact(Command.UID, b"", UID_LEN)

    def status(self) -> BoardStatus:
        data = self._exact(Command.STATUS, b"", 3)
        return BoardStatus(
            _SESSIONS.get(data[0], f"unknown({data[0]})"), bool(data[1]), None if data[2] == 0xFF else data[2]
        )

    def ecdh_begin(self) -> EcdhOffer:
        data = self._exact(Command.ECDH_BEGIN, b"", POINT_LEN + SIG_LEN)
        return EcdhOffer(data[:POINT_LEN], data[POINT_LEN:])

    def ecdh_finish(self, srv_eph: bytes, srv_sig: bytes, kc_server: bytes) -> bytes:
        """Send the service's half; returns ``kc_board`` once the board accepted it."""
        if len(srv_eph) != POINT_LEN or len(srv_sig) != SIG_LEN or len(kc_server) != KC_LEN:
            raise ValueError(
                f"ECDH_FINISH needs a {POINT_LEN}-byte point, {SIG_LEN}-byte r||s and {KC_LEN}-byte kc_server"
            )
        return self._exact(Command.ECDH_FINISH, srv_eph + srv_sig + kc_server, KC_LEN)

    # -- framing ------------------------------------------------------------------------------
    def _exact(self, cmd: Command, payload: bytes, length: int) -> bytes:
        data = self.request(cmd, payload)
        if len(data) != length:
            raise ChannelError(f"{cmd.name} answer has {len(data)} bytes, expected {length}")
        return data

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send one request; return the response payload after its OK status byte."""
        name = _command_name(cmd)
        self.link.write(encode(cmd, payload))
        deadline = time.monotonic() + self.timeout
        while True:
            frame = self._read_frame(deadline, name)
            if frame.cmd == Unsolicited.BOOT_FAIL:
                raise BoardBootFailed(frame.payload[1] if len(frame.payload) > 1 else 0)
            if frame.cmd == Unsolicited.FRAME_ERROR:
                raise BoardError(name, frame.status)
            if frame.cmd != cmd | RESPONSE_BIT:
                continue  # a stale answer to an earlier, abandoned request
            if frame.status != Status.OK:
                raise BoardError(name, frame.status)
            return frame.payload[1:]

    def _read(self, n: int, deadline: float, name: str) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.link.read(n - len(buf))
            buf += chunk
            if not chunk and time.monotonic() > deadline:
                raise ChannelError(f"board did not answer {name} within {self.timeout:g} s")
        return buf

    def _read_frame(self, deadline: float, name: str) -> Frame:
        while self._read(1, deadline, name)[0] != SOF:
            pass  # skip line noise until a start of frame
        head = self._read(HEADER_LEN - 1, deadline, name)
        cmd, length = struct.unpack("<BH", head)
        if length > MAX_PAYLOAD:
            raise ChannelError(f"board sent a frame announcing {length} bytes (limit {MAX_PAYLOAD})")
        rest = self._read(length + CRC_LEN, deadline, name)
        payload = rest[:length]
        (crc,) = struct.unpack("<I", rest[length:])
        if crc != frame_crc(cmd, payload):
            raise ChannelError(f"corrupted answer to {name} (CRC mismatch)")
        return Frame(cmd, payload)
