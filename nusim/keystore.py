"""KeyStore (KS, 0x40220000): key slots in SRAM (volatile), flash and OTP (persistent).

A key written without METADATA.READABLE can be used by the CRYPTO engine by slot number but is
never returned by a READ operation, to the CPU or to the debugger: the KEY registers only ever
hold key bits for a READ of a readable key (and are cleared after every WRITE). There is no other
path to the slots: they are not on the bus.

Operations take modelled time (``DURATION`` ticks; one tick per peripheral access): STS.BUSY is
set while one runs, and STS.IF/EIF (and INITDONE after INIT) appear only when it is done. A START
while BUSY is ignored. The block answers only while CLK_KSCTL.KS0CKEN runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nusim.board import Master, WordDevice
from nusim.nvstate import KS_SRAM_SLOTS, KsKey

if TYPE_CHECKING:
    from nusim.board import Board

CTL, METADATA, STS, REMAIN, KEY0, OTPSTS = 0x00, 0x04, 0x08, 0x0C, 0x20, 0x40
CTL_START, CTL_CONT, CTL_INIT, CTL_SILENT, CTL_SCMB = 1 << 0, 1 << 7, 1 << 8, 1 << 10, 1 << 11
OP_READ, OP_WRITE, OP_ERASE, OP_ERASE_ALL, OP_REVOKE, OP_REMAN, OP_LOCK = 0, 1, 2, 3, 4, 5, 7
STS_IF, STS_EIF, STS_BUSY, STS_SRAMFULL, STS_FLASHFULL, STS_INITDONE = 1, 2, 4, 8, 16, 128

META_SEC, META_PRIV, META_READABLE, META_BS = 1, 2, 4, 16  # bit 3 is reserved: no revoke bit
OWNER_AES, OWNER_HMAC, OWNER_RSA_EXP, OWNER_RSA_MID, OWNER_ECC, OWNER_CPU = 0, 1, 2, 3, 4, 5
MEM_SRAM, MEM_FLASH, MEM_OTP = 0, 1, 2
SIZE_BITS = {0: 128, 1: 163, 2: 192, 3: 224, 4: 233, 5: 255, 6: 256}
SRAM_BYTES, FLASH_BYTES = 4096, 8192
DURATION_INIT, DURATION_OP = 16, 4
OTP_ERASE_LIMIT = 3  # ks.h: KS_MAX_OTPKEY_ERASE_CNT


def meta_size(meta: int) -> int:
    return (meta >> 8) & 0x1F


def meta_owner(meta: int) -> int:
    return (meta >> 16) & 0x7


def meta_number(meta: int) -> int:
    return (meta >> 20) & 0x3F


def meta_dst(meta: int) -> int:
    return (meta >> 30) & 0x3


def make_meta(
    *, dst: int, owner: int, size: int = 6, readable: bool = False, number: int = 0, secure: bool = True
) -> int:
    """A METADATA word (PRIV set; SEC unless ``secure`` is false), as a privileged owner would."""
    return (
        (META_SEC if secure else 0)
        | META_PRIV
        | (META_READABLE if readable else 0)
        | (size << 8)
        | (owner << 16)
        | (number << 20)
        | (dst << 30)
    )


class KsError(Exception):
    """A KeyStore operation the part refuses (STS.EIF)."""


class KeyStore(WordDevice):
    """The KS register block and its slots."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.sram: list[KsKey | None] = [None] * KS_SRAM_SLOTS
        self.reset()

    def reset(self) -> None:
        """A reset loses the SRAM slots and the KS lock; flash/OTP slots live in ``board.nv``."""
        self.sram = [None] * KS_SRAM_SLOTS
        self.ctl = 0
        self.metadata = 0
        self.sts = 0
        self.key = [0] * 8
        self.initialised = False
        self.done_at = 0
        self._pending: tuple[int, bool] | None = None  # (STS bits, initialised) shown when done

    def _settle(self) -> None:
        if self._pending is not None and self.board.ticks >= self.done_at:
            bits, init = self._pending
            self.sts |= bits
            self.initialised = self.initialised or init
            self._pending = None

    # -- slots --------------------------------------------------------------------------------
    def bank(self, dst: int) -> list[KsKey | None]:
        if dst == MEM_SRAM:
            return self.sram
        if dst == MEM_FLASH:
            return self.board.nv.ks_flash
        if dst == MEM_OTP:
            return self.board.nv.ks_otp
        raise KsError("bad key destination")

    def get(self, dst: int, number: int, owner: int) -> KsKey:
        """A usable key for the CRYPTO engine: present, not revoked, of the right owner."""
        self._settle()
        if not self.initialised:
            raise KsError("KeyStore not initialised")
        bank = self.bank(dst)
        if not 0 <= number < len(bank) or bank[number] is None:
            raise KsError(f"no key in slot {number} of memory {dst}")
        key = bank[number]
        assert key is not None
        if key.revoked:
            raise KsError("key revoked")
        if meta_owner(key.metadata) != owner:
            raise KsError("key owned by another engine")
        return key

    def store(self, meta: int, data: bytes) -> int:
        """Put a key into the slot memory named by ``meta`` (OTP: the slot ``meta`` names; SRAM and
        flash: the first free slot). Returns the slot number; refuses a used OTP slot."""
        self._settle()
        if not self.initialised:
            raise KsError("KeyStore not initialised")
        size = meta_size(meta)
        if size not in SIZE_BITS:
            raise KsError("unsupported key size")
        nbytes = (SIZE_BITS[size] + 7) // 8
        if len(data) < nbytes:
            raise KsError("key shorter than its size")
        dst = meta_dst(meta)
        bank = self.bank(dst)
        if dst == MEM_OTP:
            number = meta_number(meta)
            if not 0 <= number < len(bank):
                raise KsError("no such OTP key slot")
            if bank[number] is not None:
                raise KsError("OTP key slot already used")
            if self.board.nv.ks_otp_locked[number]:
                raise KsError("OTP key slot locked")
        else:
            free = [i for i, k in enumerate(bank) if k is None]
            if not free or self._remaining(dst) < nbytes:
                raise KsError("KeyStore memory full")
            number = free[0]
        meta = (meta & ~(0x3F << 20)) | (number << 20)
        bank[number] = KsKey(bytes(data[:nbytes]), meta)
        if dst != MEM_SRAM:
            self.board.commit_nv()
        return number

    def _remaining(self, dst: int) -> int:
        cap = SRAM_BYTES if dst == MEM_SRAM else FLASH_BYTES
        used = sum(len(k.data) for k in self.bank(dst) if k is not None)
        return cap - used

    # -- registers ----------------------------------------------------------------------------
    def read32(self, offset: int, master: Master) -> int:
        self._settle()
        if offset == CTL:
            return self.ctl
        if offset == METADATA:
            return self.metadata
        if offset == STS:
            sts = self.sts | (STS_INITDONE if self.initialised else 0)
            if self._pending is not None:
                sts |= STS_BUSY
            if all(k is not None for k in self.sram):
                sts |= STS_SRAMFULL
            if all(k is not None for k in self.board.nv.ks_flash):
                sts |= STS_FLASHFULL
            return sts
        if offset == REMAIN:
            return self._remaining(MEM_SRAM) | (self._remaining(MEM_FLASH) << 16)
        if KEY0 <= offset < KEY0 + 32:
            return self.key[(offset - KEY0) // 4]
        if offset == OTPSTS:
            return sum(1 << i for i, k in enumerate(self.board.nv.ks_otp) if k is not None)
        return 0

    def write32(self, offset: int, value: int, master: Master) -> None:
        self._settle()
        if offset == CTL:
            if self._pending is not None:
                return  # BUSY: the part ignores a new START
            self.ctl = value & ~CTL_START
            if value & CTL_START:
                self._start(value)
        elif offset == METADATA:
            self.metadata = value
        elif offset == STS:
            self.sts &= ~(value & (STS_IF | STS_EIF))  # write 1 to clear
        elif KEY0 <= offset < KEY0 + 32:
            self.key[(offset - KEY0) // 4] = value

    def _start(self, ctl: int) -> None:
        self.sts &= ~(STS_IF | STS_EIF)
        init = bool(ctl & CTL_INIT)
        try:
            if not init:
                self._operate((ctl >> 1) & 0x7)
            bits = STS_IF
        except KsError:
            bits = STS_IF | STS_EIF
        self._pending = (bits, init)
        self.done_at = self.board.ticks + (DURATION_INIT if init else DURATION_OP)

    def _operate(self, op: int) -> None:
        if not self.initialised:
            raise KsError("KeyStore not initialised")
        meta = self.metadata
        dst, number = meta_dst(meta), meta_number(meta)
        if op == OP_READ:
            self.key = [0] * 8
            bank = self.bank(dst)
            if not 0 <= number < len(bank) or bank[number] is None:
                raise KsError("empty slot")
            key = bank[number]
            assert key is not None
            if not key.metadata & META_READABLE or key.revoked:
                raise KsError("key is not readable")
            data = key.data.ljust(32, b"\x00")
            self.key = [int.from_bytes(data[i : i + 4], "little") for i in range(0, 32, 4)]
            self.metadata = key.metadata
        elif op == OP_WRITE:
            data = b"".join(w.to_bytes(4, "little") for w in self.key)
            self.key = [0] * 8
            number = self.store(meta, data)
            self.metadata = (meta & ~(0x3F << 20)) | (number << 20)
        elif op == OP_ERASE:  # one key, SRAM or OTP only (ks_reg.h OPMODE 010)
            bank = self.bank(dst)
            if dst == MEM_FLASH or not 0 <= number < len(bank) or bank[number] is None:
                raise KsError("erase refused: ERASE takes one SRAM or OTP key")
            if dst == MEM_OTP:
                nv = self.board.nv
                if nv.ks_otp_locked[number]:
                    raise KsError("OTP key slot locked")
                if nv.ks_otp_erases[number] >= OTP_ERASE_LIMIT:
                    raise KsError("OTP key slot erased KS_MAX_OTPKEY_ERASE_CNT times already")
                nv.ks_otp_erases[number] += 1
            bank[number] = None
            if dst == MEM_OTP:
                self.board.commit_nv()
        elif op == OP_ERASE_ALL:  # every key of SRAM or of flash (OPMODE 011)
            if dst == MEM_SRAM:
                self.sram = [None] * KS_SRAM_SLOTS
            elif dst == MEM_FLASH:
                self.board.nv.ks_flash = [None] * len(self.board.nv.ks_flash)
                self.board.commit_nv()
            else:
                raise KsError("erase all refused: ERASE_ALL takes SRAM or flash")
        elif op == OP_REVOKE:
            bank = self.bank(dst)
            if not 0 <= number < len(bank) or bank[number] is None:
                raise KsError("empty slot")
            key = bank[number]
            assert key is not None
            key.revoked = True
            if dst != MEM_SRAM:
                self.board.commit_nv()
        elif op == OP_LOCK:  # one OTP slot (OPMODE 111, "only for OTP")
            if dst != MEM_OTP or not 0 <= number < len(self.board.nv.ks_otp):
                raise KsError("LOCK takes one OTP key slot")
            self.board.nv.ks_otp_locked[number] = True
            self.board.commit_nv()
        else:
            raise KsError("unsupported KeyStore operation")
