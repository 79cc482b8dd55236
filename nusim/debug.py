"""The private peripheral bus (0xE0000000-0xE00FFFFF) as the debugger and the core see it: ROM
table, ITM/DWT/FPB/SCS component ids, the core debug registers (DHCSR, DCRSR/DCRDR, DEMCR, DFSR),
AIRCR resets, FPB breakpoints, and the ID registers pyocd reads during discovery.

The core is identified as a Cortex-M55 without FPU/MVE, with the Armv8-M Security Extension as the
debugger sees it (ID_PFR1.Security, DSCSR, DHCSR.S_SDE, DAUTHCTRL, DAUTHSTATUS, the SAU of
``nusim.sau``); the emulated ISA is the M33's and unicorn runs every instruction in one
state, reported as Secure (DSCSR.CDS = 1). The core advances when the debugger resumes it and while the
debugger polls DHCSR, within ``board.instruction_budget`` instructions per resume.

After the secure lock, the debugger can still read the ROM table and ids (so pyocd connects and
can tell), but halting, register access and resets through the debug registers are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nusim import memmap, sau
from nusim.board import CoreState, Master, WordDevice
from nusim.cpu import RunResult, StopReason

if TYPE_CHECKING:
    from nusim.board import Board

ARM_JEP106 = 0x43B
CPUID = 0x411F_D220  # Cortex-M55 r1p0
CORE_PART = 0xD22
ROM_PART = 0x4C9
POLL_SLICE = 200_000  # instructions run per DHCSR poll while the core runs

# Offsets from the PPB base.
ITM, DWT, FPB, SCS, ROM = 0x0000, 0x1000, 0x2000, 0xE000, 0xFF000
# core_cm55.h: DCB_BASE, DIB_BASE, SCB_BASE and their register offsets (absolute addresses).
DCB_BASE, DIB_BASE, SCB_BASE = 0xE000_EDF0, 0xE000_EFB0, 0xE000_ED00
DCB_DHCSR, DCB_DAUTHCTRL, DCB_DSCSR, DIB_DAUTHSTATUS, SCB_ID_PFR1 = 0x00, 0x14, 0x18, 0x08, 0x44
_DCB, _DIB = DCB_BASE - memmap.PPB_BASE, DIB_BASE - memmap.PPB_BASE
DHCSR, DCRSR, DCRDR, DEMCR, DSCSR = _DCB + DCB_DHCSR, _DCB + 0x4, _DCB + 0x8, _DCB + 0xC, _DCB + DCB_DSCSR
CPUID_R, ICSR, VTOR, AIRCR, CPACR = SCS + 0xD00, SCS + 0xD04, SCS + 0xD08, SCS + 0xD0C, SCS + 0xD88
DFSR, ID_PFR0, ID_DFR0 = SCS + 0xD30, SCS + 0xD40, SCS + 0xD48
ID_PFR1 = SCB_BASE - memmap.PPB_BASE + SCB_ID_PFR1
DAUTHCTRL, DAUTHSTATUS = _DCB + DCB_DAUTHCTRL, _DIB + DIB_DAUTHSTATUS
SAU = sau.SAU_BASE - memmap.PPB_BASE
SAU_END = SAU + sau.RLAR + 4
MVFR0, MVFR1, MVFR2 = SCS + 0xF40, SCS + 0xF44, SCS + 0xF48
FP_CTRL, FP_REMAP, FP_COMP0 = FPB + 0x000, FPB + 0x004, FPB + 0x008
DWT_CTRL, DWT_CYCCNT = DWT + 0x000, DWT + 0x004
NUM_FPB = 8

DBGKEY = 0xA05F << 16
C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS = 1 << 0, 1 << 1, 1 << 2, 1 << 3
S_REGRDY, S_HALT, S_SLEEP, S_LOCKUP, S_RETIRE_ST, S_RESET_ST = (
    1 << 16,
    1 << 17,
    1 << 18,
    1 << 19,
    1 << 24,
    1 << 25,
)
S_SDE = 1 << 20  # core_cm55.h: DCB_DHCSR_S_SDE (secure debug enabled)
DSCSR_SBRSELEN, DSCSR_SBRSEL, DSCSR_CDS, DSCSR_CDSKEY = 1 << 0, 1 << 1, 1 << 16, 1 << 17
DAUTHCTRL_SPIDENSEL, DAUTHCTRL_INTSPIDEN, DAUTHCTRL_SPNIDENSEL, DAUTHCTRL_INTSPNIDEN = 1, 2, 4, 8
ID_PFR1_VALUE = 0x0000_0210  # Security b7:4 = 1 (Armv8.0-M Security Extension), M programmer's model
DAUTH_ENABLED, DAUTH_DISABLED = 0b11, 0b10  # DAUTHSTATUS field: implemented and enabled / disabled
DAUTHSTATUS_NSID_POS, DAUTHSTATUS_NSNID_POS, DAUTHSTATUS_SID_POS, DAUTHSTATUS_SNID_POS = 0, 2, 4, 6
DFSR_HALTED, DFSR_BKPT, DFSR_VCATCH, DFSR_EXTERNAL = 1 << 0, 1 << 1, 1 << 3, 1 << 4
DEMCR_VC_CORERESET = 1 << 0
VECTKEY = 0x05FA << 16
AIRCR_SYSRESETREQ, AIRCR_VECTRESET = 1 << 2, 1 << 0
REGWNR = 1 << 16


def _component_ids(cls: int, part: int, devtype: int = 0, devarch: int = 0) -> dict[int, int]:
    """CoreSight id registers (offsets 0xFBC-0xFFC within a 4 KiB component)."""
    des = ARM_JEP106 & 0x7F
    return {
        0xFBC: devarch,
        0xFCC: devtype,
        0xFD0: ARM_JEP106 >> 8,  # PIDR4: JEP106 continuation code
        0xFE0: part & 0xFF,
        0xFE4: ((part >> 8) & 0xF) | ((des & 0xF) << 4),
        0xFE8: ((des >> 4) & 0x7) | 0x8,
        0xFEC: 0,
        0xFF0: 0x0D,
        0xFF4: (cls & 0xF) << 4,
        0xFF8: 0x05,
        0xFFC: 0xB1,
    }


def _rom_entry(component: int) -> int:
    return ((component - memmap.ROM_TABLE_BASE) & 0xFFFF_F000) | 0x3


COMPONENTS: dict[int, dict[int, int]] = {
    ITM: _component_ids(0x9, CORE_PART, 0x43, 0x4770_1A01),
    DWT: _component_ids(0x9, CORE_PART, 0x00, 0x4770_1A02),
    FPB: _component_ids(0x9, CORE_PART, 0x00, 0x4770_1A03),
    SCS: _component_ids(0x9, CORE_PART, 0x00, 0x4770_2A04),
    ROM: {
        **_component_ids(0x1, ROM_PART, 0x01),
        0x000: _rom_entry(memmap.SCS_BASE),
        0x004: _rom_entry(memmap.DWT_BASE),
        0x008: _rom_entry(memmap.FPB_BASE),
        0x00C: _rom_entry(memmap.ITM_BASE),
        0x010: 0,
    },
}
FIXED_SCS = {
    CPUID_R: CPUID,
    ID_PFR0: 0x0000_0030,
    ID_PFR1: ID_PFR1_VALUE,
    ID_DFR0: 0x0020_0000,
    MVFR0: 0,
    MVFR1: 0,
    MVFR2: 0,
    CPACR: 0,  # no coprocessors: writes do not stick
}


class CoreDebug(WordDevice):
    """PPB registers, and the debug-side control of the core."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.dhcsr_ctl = 0
        self.demcr = 0
        self.dfsr = 0
        self.dcrdr = 0
        self.vtor = memmap.FLASH_BASE
        self.reset_sticky = True
        self.fp_ctrl = 0
        self.fp_comp = [0] * NUM_FPB
        self.budget_left: int | None = None
        self.pending_reset = False
        self.dscsr = 0  # SBRSELEN, SBRSEL (CDS is always 1: the core runs Secure)
        self.dauthctrl = 0

    def reset(self) -> None:
        """System reset: debug control (DHCSR, DEMCR, FPB, DSCSR) survives, as it is in the debug
        domain; DAUTHCTRL, set by secure software, is cleared."""
        self.dauthctrl = 0
        self.reset_sticky = True
        self.vtor = memmap.FLASH_BASE
        self.budget_left = None
        self.pending_reset = False

    def after_reset(self, halted: bool) -> None:
        if halted:
            self.dfsr |= DFSR_VCATCH

    # -- access -------------------------------------------------------------------------------
    def read32(self, offset: int, master: Master) -> int:
        block = offset & ~0xFFF
        locked = master is Master.DEBUGGER and self.board.debug_locked
        if block in COMPONENTS and (offset & 0xFFF) >= 0xFBC:
            return COMPONENTS[block].get(offset & 0xFFF, 0)
        if block == ROM:
            return COMPONENTS[ROM].get(offset & 0xFFF, 0)
        if offset in FIXED_SCS:
            return FIXED_SCS[offset]
        if SAU <= offset < SAU_END:
            return self.board.sau.read32(offset - SAU) if self._secure_access(master) else 0
        if offset == DSCSR:
            return self.dscsr | DSCSR_CDS
        if offset == DAUTHCTRL:
            return self.dauthctrl if self._secure_access(master) else 0
        if offset == DAUTHSTATUS:
            return self._dauthstatus()
        if offset == DHCSR:
            return self._read_dhcsr(master, locked)
        if offset == DCRDR:
            return 0 if locked else self.dcrdr
        if offset == DEMCR:
            return self.demcr
        if offset == DFSR:
            return self.dfsr
        if offset == VTOR:
            return self.vtor
        if offset == AIRCR:
            return 0xFA05_0000
        if offset == FP_CTRL:
            return self.fp_ctrl | (NUM_FPB << 4) | (1 << 28)
        if FP_COMP0 <= offset < FP_COMP0 + 4 * NUM_FPB:
            return self.fp_comp[(offset - FP_COMP0) // 4]
        if offset == DWT_CTRL:
            return 0  # NUMCOMP = 0: no watchpoint comparators
        return 0

    def write32(self, offset: int, value: int, master: Master) -> None:
        if master is Master.DEBUGGER and self.board.debug_locked:
            return  # debug control is gone after the lock
        if SAU <= offset < SAU_END:
            if self._secure_access(master):
                self.board.sau.write32(offset - SAU, value, master.value)
                self.board.attr_pages.clear()  # attribution may change: trace it afresh
        elif offset == DSCSR:
            self.dscsr = value & (DSCSR_SBRSELEN | DSCSR_SBRSEL)
            if not value & (DSCSR_CDSKEY | DSCSR_CDS):
                self.board.note("dscsr", "CDS = 0 ignored: the simulated core has only the Secure state")
        elif offset == DAUTHCTRL:
            if master is Master.CPU:  # secure software; the debugger cannot lift its own restriction
                self.dauthctrl = value & 0xF
        elif offset == DHCSR:
            if master is Master.DEBUGGER and (value & 0xFFFF_0000) == DBGKEY:
                self._write_dhcsr(value & 0xF)
        elif offset == DCRSR:
            regsel = value & 0x7F
            if value & REGWNR:
                self.board.cpu.write_reg(regsel, self.dcrdr)
            else:
                self.dcrdr = self.board.cpu.read_reg(regsel)
        elif offset == DCRDR:
            self.dcrdr = value
        elif offset == DEMCR:
            self.demcr = value
        elif offset == DFSR:
            self.dfsr &= ~value  # write 1 to clear
        elif offset == VTOR:
            self.vtor = value & ~0x7F
            self.board.note("boot.vtor", f"VTOR = 0x{self.vtor:08x} written by the {master.value}")
        elif offset == AIRCR:
            if (value & 0xFFFF_0000) == VECTKEY and value & (AIRCR_SYSRESETREQ | AIRCR_VECTRESET):
                if master is Master.CPU:
                    self.pending_reset = True
                    self.board.cpu.stop(StopReason.YIELD, "system reset requested")
                else:
                    self.system_reset()
        elif offset == FP_CTRL:
            if value & 0x2:  # KEY
                self.fp_ctrl = value & 0x1
                self._sync_breakpoints()
        elif FP_COMP0 <= offset < FP_COMP0 + 4 * NUM_FPB:
            self.fp_comp[(offset - FP_COMP0) // 4] = value
            self._sync_breakpoints()

    def _secure_access(self, master: Master) -> bool:
        """The core is Secure; a debugger access is Secure when HNONSEC = 0 and secure debug is on."""
        return master is Master.CPU or (self.board.access_secure and self.board.secure_debug)

    def secure_debug_allowed(self) -> bool:
        """Secure invasive debug: DAUTHCTRL's internal SPIDEN if selected, else the DPM's signal."""
        if self.dauthctrl & DAUTHCTRL_SPIDENSEL:
            return bool(self.dauthctrl & DAUTHCTRL_INTSPIDEN)
        return not self.board.dpm_latched[0]

    def _dauthstatus(self) -> int:
        ns = DAUTH_DISABLED if self.board.dpm_latched[1] else DAUTH_ENABLED
        sec = DAUTH_ENABLED if self.board.secure_debug else DAUTH_DISABLED
        return (
            (sec << DAUTHSTATUS_SNID_POS)
            | (sec << DAUTHSTATUS_SID_POS)
            | (ns << DAUTHSTATUS_NSNID_POS)
            | (ns << DAUTHSTATUS_NSID_POS)
        )

    # -- core control -------------------------------------------------------------------------
    def system_reset(self) -> None:
        halt = bool(self.demcr & DEMCR_VC_CORERESET) and bool(self.dhcsr_ctl & C_DEBUGEN)
        self.board.reset(halt=halt)
        self.after_reset(self.board.state is CoreState.HALTED)

    def _sync_breakpoints(self) -> None:
        addrs: set[int] = set()
        if self.fp_ctrl & 1:
            addrs = {c & 0xFFFF_FFFE for c in self.fp_comp if c & 1}
        self.board.cpu.set_breakpoints(addrs)

    def _read_dhcsr(self, master: Master, locked: bool) -> int:
        board = self.board
        if master is Master.DEBUGGER and not locked and board.state is CoreState.RUNNING:
            self._run_slice(POLL_SLICE)
        value = (self.dhcsr_ctl & ~C_HALT if not locked else 0) | S_REGRDY | S_RETIRE_ST
        if board.secure_debug:
            value |= S_SDE
        if board.state is CoreState.HALTED:
            value |= S_HALT | (C_HALT if self.dhcsr_ctl & C_DEBUGEN else 0)
        elif board.state is CoreState.LOCKUP:
            value |= S_LOCKUP
        if self.reset_sticky:
            value |= S_RESET_ST
            if master is Master.DEBUGGER:
                self.reset_sticky = False
        return value

    def _write_dhcsr(self, ctl: int) -> None:
        board = self.board
        was_halted = board.state is CoreState.HALTED
        self.dhcsr_ctl = ctl
        if not ctl & C_DEBUGEN:
            if was_halted:
                self._resume()
            return
        if ctl & C_HALT:
            if board.state is not CoreState.HALTED:
                board.halt()
                self.dfsr |= DFSR_HALTED
            return
        if was_halted and ctl & C_STEP:
            board.resume()
            result = board.run(1)
            if result is not None and result.reason is StopReason.STEP:
                self.dfsr |= DFSR_HALTED
            elif result is not None and result.reason in (StopReason.BKPT, StopReason.BREAKPOINT):
                self.dfsr |= DFSR_BKPT
            return
        if was_halted:
            self._resume()

    def _resume(self) -> None:
        self.board.resume()
        budget = self.board.instruction_budget
        self.budget_left = budget if budget > 0 else None
        self._run_slice(POLL_SLICE)

    def _run_slice(self, n: int) -> None:
        board = self.board
        if self.budget_left is not None:
            n = min(n, self.budget_left)
            if n <= 0:
                board.halt()
                self.dfsr |= DFSR_EXTERNAL
                board.last_stop = RunResult(StopReason.BUDGET, "instruction budget exhausted")
                return
        result = board.run(n)
        if result is None:
            return
        if self.pending_reset:
            self.system_reset()
            return
        if result.reason is StopReason.BUDGET and self.budget_left is not None:
            self.budget_left -= n
        elif result.reason in (StopReason.BKPT, StopReason.BREAKPOINT):
            self.dfsr |= DFSR_BKPT
