"""OTP writes through the FMC's ISP registers, with the layout's writer rules enforced.

Rules (docs/otp-layout.md, "Rules for writers"): read the target entries first — each must be
blank or already equal to what would be written, else stop before any write; program only the
words that are still blank; read back and compare; only then program the entries' lock words.
A mismatch raises ``OtpConflict`` and nothing further is written. ``ProgramLog`` records every
PROGRAM command before it is triggered and after it completed, and refuses a second PROGRAM to an
address that completed one: nothing is burned twice, even by a bug.

The ISP sequence is the one of Nuvoton's ``FMC_Write``/``FMC_Read`` (ISPCMD, ISPADDR, ISPDAT,
ISPTRG.ISPGO, wait for ISPGO to clear, check ISPCTL.ISPFF), done over the debugger's memory port.
As on the M55M1 (fmc_reg.h, sys_reg.h, clk_reg.h), the ISP clock (CLK_FMCCTL.ISP0CKEN) must run,
and ISPCTL and ISPTRG are write-protected: before each command the writer checks SYS_REGLCTL
and, when it reads locked (after a reset, or because board code closed it), writes the unlock
sequence 59h, 16h, 88h and checks that it took. A write to ISPCTL that does not read back is an
error, never silently ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nucore.otp import bytes_to_words, words_to_bytes
from nusec.provision import appendlog
from nusec.provision.errors import BoardUnreachable, OtpConflict, ProvisionError

SYS_REGLCTL = 0x4000_0100
REGLCTL_UNLOCK = (0x59, 0x16, 0x88)
CLK_FMCCTL = 0x4000_123C
FMCCTL_ISP0CKEN = 1 << 16
FMC_BASE = 0x4004_4000
ISPCTL = FMC_BASE + 0x00
ISPADDR = FMC_BASE + 0x04
ISPDAT = FMC_BASE + 0x08
ISPCMD = FMC_BASE + 0x0C
ISPTRG = FMC_BASE + 0x10
ISPSTS = FMC_BASE + 0x40
ISPCTL_ISPEN = 1 << 0
ISPCTL_APUEN = 1 << 3
ISPCTL_CFGUEN = 1 << 4
ISPCTL_ISPFF = 1 << 6
ISPTRG_ISPGO = 1 << 0

CMD_READ = 0x00
CMD_READ_UID = 0x04
CMD_PROGRAM = 0x21
CMD_PAGE_ERASE = 0x22

OTP_BASE = 0x0F31_0000
OTP_LOCK_BASE = OTP_BASE + 0x800
OTP_ENTRIES = 256
ENTRY_SIZE = 8
BLANK_WORD = 0xFFFF_FFFF
ISP_POLL_LIMIT = 10_000


class MemoryPort(Protocol):
    """The slice of a pyocd ``Target`` this module needs (a real probe or the simulator)."""

    def read32(self, addr: int) -> int: ...

    def write32(self, addr: int, value: int) -> None: ...


class ProgramLog:
    """Every PROGRAM this tool sent to OTP data, OTP lock or config words, persisted as JSON lines.

    ``intent`` is appended (fsync'ed) before the trigger and ``done`` after the FMC reported
    success. An address with a ``done`` is never programmed again, even by a bug (the last line of
    defence behind read-before-write). An ``intent`` without ``done`` (the run died between the
    two, or the FMC refused the command with ISPFF) may be retried, and only when the word still
    reads blank: then no bit was programmed, and bits only go 1 -> 0.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.counts: dict[int, int] = {}  # completed PROGRAMs per address
        self.intents: dict[int, int] = {}
        self._mu = threading.Lock()
        if path is not None:
            for rec in appendlog.read_lines(path).records:  # torn/damaged lines are skipped
                try:
                    addr = int(rec["addr"])
                except (ValueError, KeyError, TypeError):
                    continue
                book = self.counts if rec.get("event") == "done" else self.intents
                book[addr] = book.get(addr, 0) + 1

    def _append(self, addr: int, event: str) -> None:
        if self.path is None:
            return
        appendlog.append_line(self.path, {"addr": addr, "event": event})  # repairs a torn tail first

    def intent(self, addr: int) -> None:
        """Record a PROGRAM about to be triggered; refuse an address already burned."""
        with self._mu:
            if self.counts.get(addr, 0):
                raise OtpConflict(f"refusing a second PROGRAM to 0x{addr:08X} (it was burned once already)")
            self.intents[addr] = self.intents.get(addr, 0) + 1
            self._append(addr, "intent")

    def done(self, addr: int) -> None:
        with self._mu:
            self.counts[addr] = self.counts.get(addr, 0) + 1
            self._append(addr, "done")

    def max_count(self) -> int:
        """Most completed PROGRAMs to any one address (1 on a correctly provisioned board)."""
        return max(self.counts.values(), default=0)


class FmcIsp:
    """FMC ISP commands over the debugger's memory port."""

    def __init__(self, mem: MemoryPort) -> None:
        self.mem = mem
        self.unlocks = 0  # unlock sequences written (each one is in the trace of a run)

    def _open(self) -> None:
        """ISP clock on and protected registers unlocked, checked; cheap when already so."""
        if self.mem.read32(SYS_REGLCTL) & 1:
            return
        clk = self.mem.read32(CLK_FMCCTL)
        if not clk & FMCCTL_ISP0CKEN:
            self.mem.write32(CLK_FMCCTL, clk | FMCCTL_ISP0CKEN)
        for code in REGLCTL_UNLOCK:
            self.mem.write32(SYS_REGLCTL, code)
        if not self.mem.read32(SYS_REGLCTL) & 1:
            raise BoardUnreachable("SYS_REGLCTL stays locked after the 59h/16h/88h unlock sequence")
        self.unlocks += 1

    def _enable(self, bits: int) -> None:
        self._open()
        ctl = self.mem.read32(ISPCTL)
        want = (ctl | ISPCTL_ISPEN | bits) & ~ISPCTL_ISPFF
        if want != ctl & ~ISPCTL_ISPFF or ctl & ISPCTL_ISPFF:
            self.mem.write32(ISPCTL, want | (ctl & ISPCTL_ISPFF))  # writing ISPFF=1 clears it
            got = self.mem.read32(ISPCTL)
            if got & want != want:
                raise BoardUnreachable(
                    f"FMC ISPCTL reads 0x{got:08X} after writing 0x{want:08X}: the write was ignored "
                    "(protected registers locked or the ISP clock off)"
                )

    def _trigger(self) -> None:
        self.mem.write32(ISPTRG, ISPTRG_ISPGO)
        for _ in range(ISP_POLL_LIMIT):
            if not self.mem.read32(ISPTRG) & ISPTRG_ISPGO:
                break
        else:
            raise BoardUnreachable("FMC ISP command did not complete (ISPGO stuck)")
        if self.mem.read32(ISPCTL) & ISPCTL_ISPFF:
            self.mem.write32(ISPCTL, self.mem.read32(ISPCTL) | ISPCTL_ISPFF)
            cmd = self.mem.read32(ISPCMD)
            addr = self.mem.read32(ISPADDR)
            raise ProvisionError(f"FMC ISP command 0x{cmd:02X} at 0x{addr:08X} failed (ISPFF set)")

    def command(self, cmd: int, addr: int, data: int = 0, *, enable: int = 0) -> int:
        """Run one ISP command; returns ISPDAT afterwards (the read result for READ commands)."""
        self._enable(enable)
        self.mem.write32(ISPCMD, cmd)
        self.mem.write32(ISPADDR, addr)
        if cmd in (CMD_PROGRAM,):
            self.mem.write32(ISPDAT, data)
        self._trigger()
        return self.mem.read32(ISPDAT) if cmd in (CMD_READ, CMD_READ_UID) else 0

    def read(self, addr: int) -> int:
        return self.command(CMD_READ, addr)

    def read_uid(self) -> bytes:
        """The 12-byte board UID: three READ_UID words, little-endian, in order."""
        words = [self.command(CMD_READ_UID, 4 * i) for i in range(3)]
        return words_to_bytes(words)

    def program(self, addr: int, value: int, *, enable: int = 0) -> None:
        self.command(CMD_PROGRAM, addr, value, enable=enable)

    def program_many(self, words: list[tuple[int, int]], *, enable: int = 0) -> None:
        """Bulk flash programming: ISPCMD set once, ISPFF checked once at the end (4 transfers a
        word instead of 7). Not for OTP, whose writes go one by one through ``OtpWriter``."""
        if not words:
            return
        self._enable(enable)
        self.mem.write32(ISPCMD, CMD_PROGRAM)
        for addr, value in words:
            self.mem.write32(ISPADDR, addr)
            self.mem.write32(ISPDAT, value)
            self.mem.write32(ISPTRG, ISPTRG_ISPGO)
            for _ in range(ISP_POLL_LIMIT):
                if not self.mem.read32(ISPTRG) & ISPTRG_ISPGO:
                    break
            else:
                raise BoardUnreachable("FMC ISP program did not complete (ISPGO stuck)")
        if self.mem.read32(ISPCTL) & ISPCTL_ISPFF:
            self.mem.write32(ISPCTL, self.mem.read32(ISPCTL) | ISPCTL_ISPFF)
            raise ProvisionError(f"FMC ISP program failed (ISPFF set) in the block from 0x{words[0][0]:08X}")

    def page_erase(self, addr: int, *, enable: int = ISPCTL_APUEN) -> None:
        self.command(CMD_PAGE_ERASE, addr, enable=enable)


@dataclass
class FieldWrite:
    """What writing one group of entries did (or, for a dry run, would do)."""

    entries: list[int]
    programmed_words: int = 0
    already_equal_words: int = 0
    locked_entries: int = 0
    already_locked: int = 0
    dry_run: bool = False
    bytes: int = 0
    notes: list[str] = field(default_factory=list)


class OtpWriter:
    """Reads and writes OTP entries through ``FmcIsp`` under the writer rules."""

    def __init__(
        self,
        isp: FmcIsp,
        log: ProgramLog,
        on_word: Callable[[str, int], None] | None = None,
    ) -> None:
        self.isp = isp
        self.log = log
        self.on_word = on_word or (lambda _kind, _addr: None)

    # -- reads -------------------------------------------------------------------------------
    def read_entry_words(self, entries: list[int]) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for n in entries:
            base = OTP_BASE + n * ENTRY_SIZE
            out[n] = (self.isp.read(base), self.isp.read(base + 4))
        return out

    def read_locks(self, entries: list[int]) -> dict[int, bool]:
        return {n: self.isp.read(OTP_LOCK_BASE + 4 * n) != BLANK_WORD for n in entries}

    def read_image(self) -> bytes:
        """All 2048 OTP bytes, word by word through ISP READ."""
        words = [self.isp.read(OTP_BASE + 4 * i) for i in range(OTP_ENTRIES * 2)]
        return words_to_bytes(words)

    # -- the one write path ------------------------------------------------------------------
    def write_entries(self, image: bytes, entries: list[int], *, dry_run: bool = False) -> FieldWrite:
        """Make ``entries`` of OTP equal to the same entries of ``image`` (2048 bytes), then lock them.

        Order: read all (stop on any entry neither blank nor equal), program blank words, read
        back and compare all, then program the lock words of every entry not yet locked.
        """
        if len(image) != OTP_ENTRIES * ENTRY_SIZE:
            raise ProvisionError(f"OTP image must be {OTP_ENTRIES * ENTRY_SIZE} bytes, got {len(image)}")
        result = FieldWrite(entries=list(entries), dry_run=dry_run)
        want = {n: tuple(bytes_to_words(image[n * ENTRY_SIZE : (n + 1) * ENTRY_SIZE])) for n in entries}
        have = self.read_entry_words(entries)
        locks = self.read_locks(entries)
        todo: list[tuple[int, int]] = []  # (address, value)
        for n in entries:
            for i, (cur, new) in enumerate(zip(have[n], want[n], strict=True)):
                addr = OTP_BASE + n * ENTRY_SIZE + 4 * i
                if cur == new:
                    result.already_equal_words += 1
                elif cur == BLANK_WORD and not locks[n]:
                    todo.append((addr, new))
                else:
                    why = "locked and " if locks[n] else ""
                    raise OtpConflict(
                        f"OTP entry {n} word {i} (0x{addr:08X}) is {why}0x{cur:08X}, neither blank nor the "
                        f"expected 0x{new:08X}: stopping before any write"
                    )
        to_lock = [n for n in entries if not locks[n]]
        result.already_locked = len(entries) - len(to_lock)
        if dry_run:
            result.programmed_words = len(todo)
            result.locked_entries = len(to_lock)
            result.bytes = 4 * (len(todo) + len(to_lock))
            return result
        for addr, value in todo:
            self.log.intent(addr)
            self.isp.program(addr, value)
            self.log.done(addr)
            self.on_word("otp", addr)
            result.programmed_words += 1
            result.bytes += 4
        back = self.read_entry_words(entries)
        for n in entries:
            if back[n] != want[n]:
                raise OtpConflict(
                    f"OTP entry {n} reads back {back[n][0]:08X}{back[n][1]:08X} after programming, expected "
                    f"{want[n][0]:08X}{want[n][1]:08X}: stopping, entries left unlocked"
                )
        for n in to_lock:
            addr = OTP_LOCK_BASE + 4 * n
            self.log.intent(addr)
            self.isp.program(addr, 0)
            self.log.done(addr)
            self.on_word("otp_lock", addr)
            result.locked_entries += 1
            result.bytes += 4
        relocked = self.read_locks(entries)
        if not all(relocked.values()):
            bad = [n for n, ok in relocked.items() if not ok]
            raise OtpConflict(f"OTP lock words of entries {bad[:8]} did not take: stopping")
        return result
