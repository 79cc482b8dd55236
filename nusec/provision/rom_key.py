"""The ROM root key: the only writer of KeyStore OTP slots 0 and 1.

On the M55M1 the mask ROM takes its secure-boot root public key from KS OTP slots 0 (X) and 1 (Y),
and secure boot is on once both are programmed (SecureBootDemo/NuBL2: ``KS->OTPSTS & 0x3``; the
key written with ``KS_WriteOTP(0/1, KS_META_256 | KS_META_ECC | KS_META_BOOT)``). From then on the
ROM starts only a NuBL2 that verifies with that key, for the life of the part. The key is the
OEM's NuBL2 signing key (HSM label ``nusec-nubl2``, made by the nubl2-key ceremony); the board
identity key lives in slot 2 (``nuboard.keyslots``).

Over the debugger's memory port, as ``ks.c`` does it: KS and CRYPTO clocks on (CLK_KSCTL,
CLK_CRYPTOCTL), KeyStore INIT and a bounded wait for INITDONE, then per slot KEY0..7 (least
significant word first), METADATA (OTP, ECC owner, 256 bits, BS, the slot number) and CTL with
OPMODE create and START, a bounded wait for BUSY to clear, and EIF checked. The key is written as
SecureBootDemo writes it: not READABLE, so the host cannot read it back; the ROM's verdict on NuBL2
at the boot check before the lock is the proof that the slots hold this key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from nuboard.keyslots import ROM_ROOT_SLOT_X, ROM_ROOT_SLOT_Y, ROM_ROOT_SLOTS

__all__ = ["ROM_ROOT_SLOTS", "burn_rom_root_key", "occupied_slots"]
from nusec.provision.errors import BoardUnreachable

log = logging.getLogger(__name__)

CLK_KSCTL = 0x4000_1268
KSCTL_KS0CKEN = 1 << 0
CLK_CRYPTOCTL = 0x4000_1218
CRYPTOCTL_CRYPTO0CKEN = 1 << 0
KS_BASE = 0x4022_0000
KS_CTL = KS_BASE + 0x00
KS_METADATA = KS_BASE + 0x04
KS_STS = KS_BASE + 0x08
KS_KEY0 = KS_BASE + 0x20
KS_OTPSTS = KS_BASE + 0x40
CTL_START = 1 << 0
CTL_OPMODE_POS = 1
CTL_INIT = 1 << 8
OPMODE_CREATE = 1
STS_EIF = 1 << 1
STS_BUSY = 1 << 2
STS_INITDONE = 1 << 7
META_SEC = 1 << 0
META_PRIV = 1 << 1
META_BS = 1 << 4
META_SIZE_POS, SIZE_256 = 8, 6
META_OWNER_POS, OWNER_ECC = 16, 4
META_NUMBER_POS = 20
META_DST_POS, DST_OTP = 30, 2
KS_POLL_LIMIT = 10_000


class MemoryPort(Protocol):
    def read32(self, addr: int) -> int: ...

    def write32(self, addr: int, value: int) -> None: ...


def occupied_slots(mem: MemoryPort) -> tuple[int, ...]:
    """Which of the ROM's slots (0, 1) already hold a key (KS_OTPSTS), after opening the KeyStore."""
    _open(mem)
    status = mem.read32(KS_OTPSTS)
    return tuple(slot for slot in ROM_ROOT_SLOTS if status & (1 << slot))


def burn_rom_root_key(mem: MemoryPort, xy: bytes, slots: tuple[int, ...] = ROM_ROOT_SLOTS) -> None:
    """IRREVERSIBLE: program X into slot 0 and Y into slot 1 (those of ``slots`` still to do).
    The caller has proven the key: NuBL2 in flash verifies with it, and it is no board key."""
    if len(xy) != 64:
        raise ValueError("the ROM root key is a 64-byte P-256 X||Y")
    _open(mem)
    for slot, half in ((ROM_ROOT_SLOT_X, xy[:32]), (ROM_ROOT_SLOT_Y, xy[32:])):
        if slot not in slots:
            continue
        value = int.from_bytes(half, "big")
        for i in range(8):
            mem.write32(KS_KEY0 + 4 * i, (value >> (32 * i)) & 0xFFFF_FFFF)
        meta = (
            META_SEC
            | META_PRIV
            | META_BS
            | (SIZE_256 << META_SIZE_POS)
            | (OWNER_ECC << META_OWNER_POS)
            | (slot << META_NUMBER_POS)
            | (DST_OTP << META_DST_POS)
        )
        mem.write32(KS_METADATA, meta)
        mem.write32(KS_CTL, (OPMODE_CREATE << CTL_OPMODE_POS) | CTL_START)
        sts = _wait(mem, lambda s: not s & STS_BUSY, "the KeyStore OTP write")
        if sts & STS_EIF:
            raise BoardUnreachable(f"the KeyStore refused to write OTP slot {slot} (KS_STS.EIF)")
        log.info("ROM root key: KS OTP slot %d programmed", slot)


def _open(mem: MemoryPort) -> None:
    for reg, bit in ((CLK_KSCTL, KSCTL_KS0CKEN), (CLK_CRYPTOCTL, CRYPTOCTL_CRYPTO0CKEN)):
        mem.write32(reg, mem.read32(reg) | bit)
    if mem.read32(KS_STS) & STS_INITDONE:
        return
    mem.write32(KS_CTL, CTL_INIT | CTL_START)
    _wait(mem, lambda s: bool(s & STS_INITDONE), "KeyStore INIT")


def _wait(mem: MemoryPort, done: Callable[[int], bool], what: str) -> int:
    for _ in range(KS_POLL_LIMIT):
        sts = mem.read32(KS_STS)
        if done(sts):
            return sts
    raise BoardUnreachable(f"{what} did not finish within {KS_POLL_LIMIT} polls of KS_STS")
