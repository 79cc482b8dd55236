"""Host side of the KeyGen snippet: load it into SRAM over pyocd, run commands through the SRAM
mailbox, return typed results (docs/snippet-protocol.md). ``nusec provision`` calls this.

The same code drives a real probe and the simulator: everything goes through a pyocd ``Target``.
"""

from __future__ import annotations

import enum
import hashlib
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyocd.core.target import Target

from nuboard.keyslots import IDENTITY_SLOT

if TYPE_CHECKING:
    from pyocd.core.soc_target import SoCTarget

BIN_DIR = Path(__file__).resolve().parent / "bin"
SNIPPET_LOAD_ADDR = 0x2000_0000
SNIPPET_MAX_SIZE = 0x6000
MAILBOX_ADDR = 0x2000_8000
MAGIC = 0x504E_534E  # "NSNP"
PROTOCOL_VERSION = 1
PAYLOAD_MAX = 3072
HEADER = struct.Struct("<8I")  # magic, version, command, status, req_len, resp_len, seq, ack_seq
PENDING = 0xFFFF_FFFF
BKPT_OPCODE = 0xBE00
KS_OTP_SLOTS = 15


class Command(enum.IntEnum):
    STATUS = 1
    READ_UID = 2
    KEYGEN = 3
    GET_PUBKEY = 4
    SIGN_CRI = 5


class Status(enum.IntEnum):
    OK = 0
    BAD_MAGIC = 1
    BAD_VERSION = 2
    BAD_COMMAND = 3
    BAD_LENGTH = 4
    SLOT_USED = 5
    NO_KEY = 6
    KEYSTORE_ERROR = 7
    CRYPTO_ERROR = 8
    FMC_ERROR = 9
    BAD_CRI = 10
    BAD_SLOT = 11


class SnippetError(Exception):
    """The snippet answered with an error status, or did not answer properly."""

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SnippetStatus:
    """STATUS answer: snippet version, KeyStore OTP slots in use (bit mask), KS_STS."""

    version: int
    otp_slots_used: int
    ks_sts: int

    def slot_used(self, slot: int) -> bool:
        return bool(self.otp_slots_used >> slot & 1)


def load_committed_image(name: str = "keygen") -> bytes:
    """The committed snippet binary, checked against its committed SHA-256."""
    image = (BIN_DIR / f"{name}.bin").read_bytes()
    expected = (BIN_DIR / f"{name}.bin.sha256").read_text(encoding="ascii").split()[0]
    if hashlib.sha256(image).hexdigest() != expected:
        raise SnippetError(f"{name}.bin does not match {name}.bin.sha256 (rebuild with `make snippets`)")
    if len(image) > SNIPPET_MAX_SIZE:
        raise SnippetError(f"{name}.bin is larger than the snippet area ({SNIPPET_MAX_SIZE} bytes)")
    return image


class KeyGenSnippet:
    """Runs the KeyGen snippet on a halted core. Call ``load`` once per power cycle."""

    def __init__(self, target: SoCTarget, *, image: bytes | None = None, timeout_s: float = 10.0) -> None:
        self.target = target
        self.image = image if image is not None else load_committed_image()
        self.timeout_s = timeout_s
        self._seq = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    def load(self) -> None:
        """Halt the core, write the image to SRAM and read it back."""
        self.target.halt()
        self.target.write_memory_block8(SNIPPET_LOAD_ADDR, list(self.image))
        back = bytes(self.target.read_memory_block8(SNIPPET_LOAD_ADDR, len(self.image)))
        self.bytes_sent += len(self.image)
        self.bytes_received += len(back)
        if back != self.image:
            raise SnippetError("snippet image did not read back as written (SRAM not accessible?)")

    # -- commands -----------------------------------------------------------------------------
    def status(self) -> SnippetStatus:
        resp = self.call(Command.STATUS)
        if len(resp) != 12:
            raise SnippetError(f"STATUS answer has {len(resp)} bytes, expected 12")
        version, slots, sts = struct.unpack("<3I", resp)
        return SnippetStatus(version, slots, sts)

    def read_uid(self) -> bytes:
        """The 12-byte UID, as FMC READ_UID gives it."""
        return self._expect(self.call(Command.READ_UID), 12, "READ_UID")

    def keygen(self, slot: int = IDENTITY_SLOT) -> bytes:
        """Generate the identity key into KeyStore OTP slot ``slot``; returns its public key X||Y."""
        return self._expect(self.call(Command.KEYGEN, self._slot(slot)), 64, "KEYGEN")

    def public_key(self, slot: int = IDENTITY_SLOT) -> bytes:
        """X||Y (64 bytes) of the key in KeyStore OTP slot ``slot``."""
        return self._expect(self.call(Command.GET_PUBKEY, self._slot(slot)), 64, "GET_PUBKEY")

    def sign_cri(self, cri_der: bytes, slot: int = IDENTITY_SLOT) -> bytes:
        """r||s (64 bytes): ECDSA P-256 over SHA-256(cri_der) with the key in ``slot``. The snippet
        signs only a DER SEQUENCE containing that key's public point."""
        if len(cri_der) > PAYLOAD_MAX - 4:
            raise SnippetError(f"CertificationRequestInfo too large ({len(cri_der)} bytes)")
        return self._expect(self.call(Command.SIGN_CRI, self._slot(slot) + cri_der), 64, "SIGN_CRI")

    # -- mailbox ------------------------------------------------------------------------------
    def call(self, command: int, payload: bytes = b"") -> bytes:
        """Run one command; the answer payload, or ``SnippetError`` with the status."""
        if len(payload) > PAYLOAD_MAX:
            raise SnippetError(f"payload too large ({len(payload)} > {PAYLOAD_MAX})")
        self._seq = (self._seq + 1) & 0xFFFF_FFFF
        header = HEADER.pack(MAGIC, PROTOCOL_VERSION, int(command), PENDING, len(payload), 0, self._seq, 0)
        status, resp = self.call_raw(header + payload)
        if status != Status.OK:
            try:
                name = Status(status).name
            except ValueError:
                name = f"unknown status {status}"
            raise SnippetError(f"snippet command {int(command)} failed: {name}", _status_or_none(status))
        return resp

    def call_raw(self, mailbox: bytes) -> tuple[int, bytes]:
        """Write ``mailbox`` (header + payload, possibly malformed) and run the snippet once.
        Returns (status, answer payload)."""
        if len(mailbox) < HEADER.size or len(mailbox) > HEADER.size + PAYLOAD_MAX:
            raise SnippetError("mailbox must hold a header and at most PAYLOAD_MAX bytes")
        seq = HEADER.unpack_from(mailbox)[6]
        target = self.target
        target.halt()
        target.write_memory_block8(MAILBOX_ADDR, list(mailbox))
        self.bytes_sent += len(mailbox)
        target.write_core_register("pc", SNIPPET_LOAD_ADDR)
        target.write_core_register("xpsr", 1 << 24)
        target.resume()
        deadline = time.monotonic() + self.timeout_s
        while target.get_state() != Target.State.HALTED:
            if time.monotonic() > deadline:
                target.halt()
                raise SnippetError(f"snippet did not finish within {self.timeout_s:.1f} s")
            time.sleep(0.001)
        pc = target.read_core_register("pc")
        if target.read16(pc) != BKPT_OPCODE:
            raise SnippetError(f"snippet stopped at 0x{pc:08x}, not on its BKPT (crashed or budget exceeded)")
        raw = bytes(target.read_memory_block8(MAILBOX_ADDR, HEADER.size))
        _magic, _ver, _cmd, status, _req, resp_len, _seq, ack = HEADER.unpack(raw)
        self.bytes_received += len(raw)
        if ack != seq:
            raise SnippetError("snippet did not acknowledge the request (stale mailbox)")
        if resp_len > PAYLOAD_MAX:
            raise SnippetError(f"snippet answered with an impossible length {resp_len}")
        resp = bytes(target.read_memory_block8(MAILBOX_ADDR + HEADER.size, resp_len)) if resp_len else b""
        self.bytes_received += len(resp)
        return status, resp

    @staticmethod
    def _slot(slot: int) -> bytes:
        if not 0 <= slot < KS_OTP_SLOTS:
            raise SnippetError(f"KeyStore OTP slot must be 0..{KS_OTP_SLOTS - 1}, got {slot}")
        return struct.pack("<I", slot)

    @staticmethod
    def _expect(resp: bytes, n: int, what: str) -> bytes:
        if len(resp) != n:
            raise SnippetError(f"{what} answer has {len(resp)} bytes, expected {n}")
        return resp


def _status_or_none(value: int) -> Status | None:
    try:
        return Status(value)
    except ValueError:
        return None
