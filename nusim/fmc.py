"""FMC in-system programming (ISP): the only way to read/program flash, OTP, OTP lock words and
the user-config area, for the CPU and for a debugger alike (registers at 0x40044000).

Write-once physics: programs only clear bits (new = old AND data); an OTP word or lock word that
is not blank refuses a program, and so does every word of a locked OTP entry. Every refused or
unknown command sets ISPCTL.ISPFF (write 1 to clear) and changes nothing.

As on the part (fmc_reg.h): ISPCTL and ISPTRG are write-protected, so writes to them are ignored
unless SYS_REGLCTL is unlocked (``nusim.sysctl``); the block answers only while the ISP clock
(CLK_FMCCTL.ISP0CKEN) runs; and a command takes modelled time (``DURATION`` ticks, one tick per
peripheral access by anyone): ISPTRG.ISPGO stays set until it is done, and ISPDAT and ISPFF show
its result only then. A new ISPGO while one is in flight is ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nusim import memmap
from nusim.board import LinkDown, Master, WordDevice
from nusim.cpu import StopReason

if TYPE_CHECKING:
    from nusim.board import Board

ISPCTL, ISPADDR, ISPDAT, ISPCMD, ISPTRG, ISPSTS = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x40
MPDAT0, MPDAT1 = 0x80, 0x84
ISPCTL_ISPEN, ISPCTL_APUEN, ISPCTL_CFGUEN, ISPCTL_ISPFF = 1 << 0, 1 << 3, 1 << 4, 1 << 6
ISPTRG_ISPGO = 1 << 0
ISPSTS_ISPFF = 1 << 6

CMD_READ, CMD_READ_UID, CMD_READ_CID, CMD_READ_DID = 0x00, 0x04, 0x0B, 0x0C
CMD_PROGRAM, CMD_PAGE_ERASE, CMD_READ_64, CMD_PROGRAM_64 = 0x21, 0x22, 0x40, 0x61
#: Modelled duration of each command in ticks (reads are quick, programs and erases are not).
DURATION = {CMD_PROGRAM: 6, CMD_PROGRAM_64: 8, CMD_PAGE_ERASE: 20}
DURATION_DEFAULT = 4
COMPANY_ID = 0xDA  # Nuvoton
DEVICE_ID = 0x00D5_5100  # simulated M55S1-like device id
BLANK = 0xFFFF_FFFF


class IspFail(Exception):
    """Internal: the command fails with ISPFF."""


class Fmc(WordDevice):
    """The FMC ISP register block."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.reset()

    def reset(self) -> None:
        self.ispctl = 0
        self.ispaddr = 0
        self.ispdat = 0
        self.ispcmd = 0
        self.mpdat = [0, 0]
        self.done_at = 0  # tick at which the command in flight completes
        self._pending: tuple[int, int] | None = None  # (ISPDAT, ISPFF) it will show then

    @property
    def busy(self) -> bool:
        self._settle()
        return self._pending is not None

    def _settle(self) -> None:
        if self._pending is not None and self.board.ticks >= self.done_at:
            self.ispdat, ff = self._pending
            self.ispctl |= ff
            self._pending = None

    # -- registers ----------------------------------------------------------------------------
    def read32(self, offset: int, master: Master) -> int:
        self._settle()
        if offset == ISPCTL:
            return self.ispctl
        if offset == ISPADDR:
            return self.ispaddr
        if offset == ISPDAT:
            return self.ispdat
        if offset == ISPCMD:
            return self.ispcmd
        if offset == ISPTRG:
            return ISPTRG_ISPGO if self._pending is not None else 0
        if offset == ISPSTS:
            return ISPSTS_ISPFF if self.ispctl & ISPCTL_ISPFF else 0
        if offset in (MPDAT0, MPDAT1):
            return self.mpdat[(offset - MPDAT0) // 4]
        return 0

    def write32(self, offset: int, value: int, master: Master) -> None:
        self._settle()
        if offset in (ISPCTL, ISPTRG) and not self.board.sys.unlocked:
            return  # write-protected: ignored, as the part ignores it
        if offset == ISPCTL:
            ff = self.ispctl & ISPCTL_ISPFF
            if value & ISPCTL_ISPFF:
                ff = 0  # write 1 to clear
            self.ispctl = (value & ~ISPCTL_ISPFF) | ff
        elif offset == ISPADDR:
            self.ispaddr = value
        elif offset == ISPDAT:
            self.ispdat = value
        elif offset == ISPCMD:
            self.ispcmd = value & 0x7F
        elif offset == ISPTRG and value & ISPTRG_ISPGO and self._pending is None:
            self._trigger(master)
        elif offset in (MPDAT0, MPDAT1):
            self.mpdat[(offset - MPDAT0) // 4] = value

    def _trigger(self, master: Master) -> None:
        shown = self.ispdat
        ff = 0
        try:
            if not self.ispctl & ISPCTL_ISPEN:
                raise IspFail("ISP not enabled")
            self._execute(self.ispcmd, self.ispaddr)
        except IspFail:
            ff = ISPCTL_ISPFF
        self._pending = (self.ispdat, ff)
        self.ispdat = shown
        self.done_at = self.board.ticks + DURATION.get(self.ispcmd, DURATION_DEFAULT)

    # -- commands -----------------------------------------------------------------------------
    def _execute(self, cmd: int, addr: int) -> None:
        if cmd == CMD_READ:
            self.ispdat = self.read_word(addr)
        elif cmd == CMD_READ_64:
            if addr % 8:
                raise IspFail("READ_64 needs an 8-byte aligned address")
            self.mpdat = [self.read_word(addr), self.read_word(addr + 4)]
            self.ispdat = self.mpdat[0]
        elif cmd == CMD_READ_UID:
            if addr not in (0, 4, 8):
                raise IspFail("UID has three words")
            self.ispdat = int.from_bytes(self.board.uid[addr : addr + 4], "little")
        elif cmd == CMD_READ_CID:
            self.ispdat = COMPANY_ID
        elif cmd == CMD_READ_DID:
            self.ispdat = DEVICE_ID
        elif cmd == CMD_PROGRAM:
            self._program(addr, [self.ispdat])
        elif cmd == CMD_PROGRAM_64:
            if addr % 8:
                raise IspFail("PROGRAM_64 needs an 8-byte aligned address")
            self._program(addr, list(self.mpdat))
        elif cmd == CMD_PAGE_ERASE:
            self._page_erase(addr)
        else:
            raise IspFail(f"unsupported ISP command 0x{cmd:02x}")

    def read_word(self, addr: int) -> int:
        """ISP READ of one word anywhere the FMC reaches."""
        buf, off = self._locate(addr)
        return int.from_bytes(buf[off : off + 4], "little")

    def _locate(self, addr: int) -> tuple[bytearray, int]:
        nv = self.board.nv
        if addr % 4:
            raise IspFail("unaligned ISP address")
        if memmap.FLASH_BASE <= addr < memmap.FLASH_BASE + memmap.FLASH_SIZE:
            return nv.flash, addr - memmap.FLASH_BASE
        if memmap.OTP_BASE <= addr < memmap.OTP_BASE + memmap.OTP_SIZE:
            return nv.otp, addr - memmap.OTP_BASE
        if memmap.OTP_LOCK_BASE <= addr < memmap.OTP_LOCK_BASE + memmap.OTP_LOCK_SIZE:
            return nv.otp_locks, addr - memmap.OTP_LOCK_BASE
        if memmap.CONFIG_BASE <= addr < memmap.CONFIG_BASE + memmap.CONFIG_SIZE:
            return nv.config, addr - memmap.CONFIG_BASE
        raise IspFail(f"no ISP target at 0x{addr:08x}")

    def _check_program(self, addr: int) -> None:
        nv = self.board.nv
        if memmap.FLASH_BASE <= addr < memmap.FLASH_BASE + memmap.FLASH_SIZE:
            if not self.ispctl & ISPCTL_APUEN:
                raise IspFail("APROM update not enabled (ISPCTL.APUEN)")
        elif memmap.OTP_BASE <= addr < memmap.OTP_BASE + memmap.OTP_SIZE:
            entry = (addr - memmap.OTP_BASE) // 8
            if int.from_bytes(nv.otp_locks[entry * 4 : entry * 4 + 4], "little") != BLANK:
                raise IspFail(f"OTP entry {entry} is locked")
            if self.read_word(addr) != BLANK:
                raise IspFail("OTP word already programmed")
        elif memmap.OTP_LOCK_BASE <= addr < memmap.OTP_LOCK_BASE + memmap.OTP_LOCK_SIZE:
            if self.read_word(addr) != BLANK:
                raise IspFail("OTP lock word already programmed")
        elif memmap.CONFIG_BASE <= addr < memmap.CONFIG_BASE + memmap.CONFIG_SIZE:
            if not self.ispctl & ISPCTL_CFGUEN:
                raise IspFail("config update not enabled (ISPCTL.CFGUEN)")
        else:
            raise IspFail(f"no ISP target at 0x{addr:08x}")

    def _count_otp_program(self, addr: int) -> bool:
        """Count a PROGRAM that reaches an OTP data or lock word (``NvState.program_counts``)."""
        counts = self.board.nv.program_counts
        if memmap.OTP_BASE <= addr < memmap.OTP_BASE + memmap.OTP_SIZE:
            counts.otp_words[(addr - memmap.OTP_BASE) // 4] += 1
            return True
        if memmap.OTP_LOCK_BASE <= addr < memmap.OTP_LOCK_BASE + memmap.OTP_LOCK_SIZE:
            counts.otp_locks[(addr - memmap.OTP_LOCK_BASE) // 4] += 1
            return True
        return False

    def _program(self, addr: int, words: list[int]) -> None:
        counted = False
        for i in range(len(words)):
            counted = self._count_otp_program(addr + 4 * i) or counted
        try:
            for i in range(len(words)):
                self._check_program(addr + 4 * i)
            fault = self.board.faults.count_program()
            if fault == "fail":
                raise IspFail("injected program failure")
        except IspFail:
            if counted:
                self.board.commit_nv()  # the attempt is on record even though no cell changed
            raise
        for i, data in enumerate(words):
            buf, off = self._locate(addr + 4 * i)
            old = int.from_bytes(buf[off : off + 4], "little")
            new = old & data
            if fault == "power_loss":
                to_clear = old & ~data
                keep = to_clear & ~(to_clear & 0x5555_5555)  # every other bit made it
                new = old & ~(to_clear & ~keep)
            buf[off : off + 4] = new.to_bytes(4, "little")
            if buf is self.board.nv.flash:
                self.board.cpu.write_mem(memmap.FLASH_BASE + off, bytes(buf[off : off + 4]))
            if fault == "power_loss":
                break
        self._persist(addr, fault)

    def _page_erase(self, addr: int) -> None:
        if not memmap.FLASH_BASE <= addr < memmap.FLASH_BASE + memmap.FLASH_SIZE:
            raise IspFail("only APROM pages can be erased")
        if not self.ispctl & ISPCTL_APUEN:
            raise IspFail("APROM update not enabled (ISPCTL.APUEN)")
        fault = self.board.faults.count_program()
        if fault == "fail":
            raise IspFail("injected erase failure")
        off = (addr - memmap.FLASH_BASE) & ~(memmap.FLASH_PAGE_SIZE - 1)
        n = memmap.FLASH_PAGE_SIZE // (2 if fault == "power_loss" else 1)
        self.board.nv.flash[off : off + n] = b"\xff" * n
        self.board.cpu.write_mem(memmap.FLASH_BASE + off, b"\xff" * n)
        self._persist(addr, fault)

    def _persist(self, addr: int, fault: str | None) -> None:
        if fault == "power_loss":
            self.board.power_loss()
            self.board.cpu.stop(StopReason.FAULT, "power loss")
            raise LinkDown(f"simulated board {self.board.name!r}: power lost during a program")
        if memmap.FLASH_BASE <= addr < memmap.FLASH_BASE + memmap.FLASH_SIZE:
            self.board.flash_written()
        else:
            self.board.commit_nv()
