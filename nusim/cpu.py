"""The core: unicorn running Thumb-2 as a Cortex-M33 (unicorn has no M55; snippets and firmware are
built for ``-mcpu=cortex-m33``, which the M55 also runs).

Plain RAM/flash are unicorn memory (fast path); only peripheral pages are hooked (``mmio_map``),
so code runs at unicorn speed. BKPT reaches us as interrupt 7 with PC on the BKPT; any other
exception (UDF, SVC, faults) has no NVIC to go to and stops the core as a lockup.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import unicorn as _unicorn_mod
from unicorn import arm_const as arm
from unicorn.unicorn_const import (
    UC_ARCH_ARM,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_HOOK_MEM_FETCH_UNMAPPED,
    UC_HOOK_MEM_READ_UNMAPPED,
    UC_HOOK_MEM_WRITE_PROT,
    UC_HOOK_MEM_WRITE_UNMAPPED,
    UC_MODE_MCLASS,
    UC_MODE_THUMB,
    UC_PROT_EXEC,
    UC_PROT_READ,
)

_UC: Any = _unicorn_mod  # unicorn's bindings are untyped for mypy: one typed wrapper, here
Uc = Any
EXCP_BKPT = 7
_RUN_UNTIL = 0xFFFF_FFFE  # never a valid Thumb PC here: emu_start needs an end address

# DCRSR REGSEL numbers (ARMv8-M) -> unicorn registers.
_GPR = [getattr(arm, f"UC_ARM_REG_R{i}") for i in range(13)]
REGSEL_SP, REGSEL_LR, REGSEL_PC, REGSEL_XPSR, REGSEL_MSP, REGSEL_PSP = 13, 14, 15, 16, 17, 18
REGSEL_CFBP = 20  # CONTROL[31:24] FAULTMASK[23:16] BASEPRI[15:8] PRIMASK[7:0]
_SIMPLE_REGS = {
    REGSEL_SP: arm.UC_ARM_REG_SP,
    REGSEL_LR: arm.UC_ARM_REG_LR,
    REGSEL_PC: arm.UC_ARM_REG_PC,
    REGSEL_XPSR: arm.UC_ARM_REG_XPSR,
    REGSEL_MSP: arm.UC_ARM_REG_MSP,
    REGSEL_PSP: arm.UC_ARM_REG_PSP,
}

MmioRead = Callable[[int, int], int]  # (absolute address, size) -> value
MmioWrite = Callable[[int, int, int], None]  # (absolute address, size, value)


class StopReason(enum.Enum):
    """Why ``Cpu.run`` returned."""

    BKPT = "bkpt"  # a BKPT instruction; PC is on it
    BREAKPOINT = "breakpoint"  # an FPB comparator matched; PC is on the instruction
    BUDGET = "budget"  # the instruction count ran out; the core is still running
    STEP = "step"  # single step done
    YIELD = "yield"  # a peripheral asked the core to pause (e.g. polling an empty UART)
    FAULT = "fault"  # bad access or an exception with nowhere to go: lockup


@dataclass
class RunResult:
    reason: StopReason
    detail: str = ""


class Cpu:
    """A Cortex-M33-class core with the board's memories mapped into it."""

    def __init__(self) -> None:
        self.uc: Any = _UC.Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(arm.UC_CPU_ARM_CORTEX_M33)
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)
        self.uc.hook_add(
            UC_HOOK_MEM_READ_UNMAPPED
            | UC_HOOK_MEM_WRITE_UNMAPPED
            | UC_HOOK_MEM_FETCH_UNMAPPED
            | UC_HOOK_MEM_WRITE_PROT,
            self._on_bad_access,
        )
        self._stop: RunResult | None = None
        self._bp_hooks: dict[int, int] = {}
        self._skip_bp_at: int | None = None

    # -- memory -------------------------------------------------------------------------------
    def map_ram(self, base: int, size: int) -> None:
        self.uc.mem_map(base, size)
        self.uc.mem_write(base, bytes(size))

    def map_rom(self, base: int, size: int) -> None:
        """Read/execute only for the CPU (flash is written through the FMC, never by stores)."""
        self.uc.mem_map(base, size, UC_PROT_READ | UC_PROT_EXEC)

    def map_mmio(self, base: int, size: int, read: MmioRead, write: MmioWrite) -> None:
        def rd(_uc: Uc, offset: int, sz: int, _ud: object) -> int:
            return read(base + offset, sz)

        def wr(_uc: Uc, offset: int, sz: int, value: int, _ud: object) -> None:
            write(base + offset, sz, value)

        self.uc.mmio_map(base, size, rd, None, wr, None)

    def read_mem(self, addr: int, length: int) -> bytes:
        return bytes(self.uc.mem_read(addr, length))

    def write_mem(self, addr: int, data: bytes) -> None:
        """Host-side write (debugger, FMC): also drops translated code for that range."""
        self.uc.mem_write(addr, bytes(data))
        if data:
            self.uc.ctl_remove_cache(addr, addr + len(data))

    # -- registers ----------------------------------------------------------------------------
    def read_reg(self, regsel: int) -> int:
        """A core register by DCRSR REGSEL number (unknown numbers read 0)."""
        if 0 <= regsel <= 12:
            return int(self.uc.reg_read(_GPR[regsel])) & 0xFFFF_FFFF
        if regsel in _SIMPLE_REGS:
            value = int(self.uc.reg_read(_SIMPLE_REGS[regsel])) & 0xFFFF_FFFF
            if regsel == REGSEL_PC:
                value &= ~1
            if regsel == REGSEL_XPSR:
                value |= 1 << 24  # T bit: always Thumb
            return value
        if regsel == REGSEL_CFBP:
            return (
                (int(self.uc.reg_read(arm.UC_ARM_REG_CONTROL)) & 0xFF) << 24
                | (int(self.uc.reg_read(arm.UC_ARM_REG_FAULTMASK)) & 0xFF) << 16
                | (int(self.uc.reg_read(arm.UC_ARM_REG_BASEPRI)) & 0xFF) << 8
                | (int(self.uc.reg_read(arm.UC_ARM_REG_PRIMASK)) & 0xFF)
            )
        return 0

    def write_reg(self, regsel: int, value: int) -> None:
        value &= 0xFFFF_FFFF
        if 0 <= regsel <= 12:
            self.uc.reg_write(_GPR[regsel], value)
        elif regsel == REGSEL_PC:
            self.uc.reg_write(arm.UC_ARM_REG_PC, value | 1)
        elif regsel in _SIMPLE_REGS:
            self.uc.reg_write(_SIMPLE_REGS[regsel], value)
        elif regsel == REGSEL_CFBP:
            self.uc.reg_write(arm.UC_ARM_REG_PRIMASK, value & 1)
            self.uc.reg_write(arm.UC_ARM_REG_BASEPRI, (value >> 8) & 0xFF)
            self.uc.reg_write(arm.UC_ARM_REG_FAULTMASK, (value >> 16) & 1)
            self.uc.reg_write(arm.UC_ARM_REG_CONTROL, (value >> 24) & 0x3)

    @property
    def pc(self) -> int:
        return self.read_reg(REGSEL_PC)

    def reset_registers(self, sp: int, pc: int) -> None:
        """Architectural reset state: GPRs cleared, MSP/PC from the vector table, Thumb, privileged."""
        for reg in _GPR:
            self.uc.reg_write(reg, 0)
        self.uc.reg_write(arm.UC_ARM_REG_CONTROL, 0)
        self.uc.reg_write(arm.UC_ARM_REG_PRIMASK, 0)
        self.uc.reg_write(arm.UC_ARM_REG_MSP, sp & ~3)
        self.uc.reg_write(arm.UC_ARM_REG_SP, sp & ~3)
        self.uc.reg_write(arm.UC_ARM_REG_LR, 0xFFFF_FFFF)
        self.uc.reg_write(arm.UC_ARM_REG_PC, pc | 1)

    # -- breakpoints (FPB) --------------------------------------------------------------------
    def set_breakpoints(self, addrs: set[int]) -> None:
        for addr in set(self._bp_hooks) - addrs:
            self.uc.hook_del(self._bp_hooks.pop(addr))
        added = addrs - set(self._bp_hooks)
        for addr in added:
            self._bp_hooks[addr] = self.uc.hook_add(UC_HOOK_CODE, self._on_bp, begin=addr, end=addr)
        if added:
            self.uc.ctl_flush_tb()  # translated blocks do not see hooks added after translation

    def _on_bp(self, uc: Uc, address: int, _size: int, _ud: object) -> None:
        if self._skip_bp_at == address:
            self._skip_bp_at = None
            return
        self.stop(StopReason.BREAKPOINT)

    # -- running ------------------------------------------------------------------------------
    def stop(self, reason: StopReason, detail: str = "") -> None:
        """Called from hooks/peripherals: end the current ``run`` after this instruction."""
        if self._stop is None:
            self._stop = RunResult(reason, detail)
        self.uc.emu_stop()

    def run(self, count: int) -> RunResult:
        """Execute at most ``count`` instructions (``count`` 1 = single step)."""
        self._stop = None
        pc = self.pc
        self._skip_bp_at = pc
        try:
            self.uc.emu_start(pc | 1, _RUN_UNTIL, count=count)
        except _UC.UcError as exc:
            if self._stop is None:
                self._stop = RunResult(StopReason.FAULT, f"{exc} at pc=0x{self.pc:08x}")
        if self._stop is not None:
            return self._stop
        return RunResult(StopReason.STEP if count == 1 else StopReason.BUDGET)

    def _on_intr(self, uc: Uc, intno: int, _ud: object) -> None:
        if intno == EXCP_BKPT:
            self.stop(StopReason.BKPT)
        else:
            self.stop(StopReason.FAULT, f"exception {intno} at pc=0x{self.pc:08x}")

    def _on_bad_access(self, uc: Uc, access: int, address: int, size: int, value: int, _ud: object) -> bool:
        self.stop(StopReason.FAULT, f"bus fault: access {access} at 0x{address:08x} (pc=0x{self.pc:08x})")
        return False
