"""CLK, the clock controller (M55M1 ``CLK_BASE`` 0x40001000): the module clock enables.

A peripheral whose clock is off is inert: its registers read 0 and ignore writes, for the CPU
and the debugger alike (``Board`` gates every device registered with a clock). The enables are
the per-module ``CLK_*CTL`` registers of clk_reg.h; they are not write-protected. The BSP headers
give no reset values: the simulator powers up with only FMC0CKEN on (the core fetches from
flash), so code must enable every clock it uses, as ``CLK_EnableModuleClock`` does.
"""

from __future__ import annotations

from nusim.board import Master, WordDevice

CRYPTOCTL, FMCCTL, KSCTL, TRNGCTL, UARTCTL = 0x218, 0x23C, 0x268, 0x2D8, 0x2E0
CRYPTOCTL_CRYPTO0CKEN = 1 << 0
FMCCTL_FMC0CKEN = 1 << 0
FMCCTL_ISP0CKEN = 1 << 16
KSCTL_KS0CKEN = 1 << 0
TRNGCTL_TRNG0CKEN = 1 << 0
UARTCTL_UART0CKEN = 1 << 0

#: Clock gate name -> (register offset, enable bit); devices name their gate when registered.
GATES: dict[str, tuple[int, int]] = {
    "CRYPTO0": (CRYPTOCTL, CRYPTOCTL_CRYPTO0CKEN),
    "ISP0": (FMCCTL, FMCCTL_ISP0CKEN),
    "KS0": (KSCTL, KSCTL_KS0CKEN),
    "TRNG0": (TRNGCTL, TRNGCTL_TRNG0CKEN),
    "UART0": (UARTCTL, UARTCTL_UART0CKEN),
}
_RESET = {FMCCTL: FMCCTL_FMC0CKEN}
_MODELLED = (CRYPTOCTL, FMCCTL, KSCTL, TRNGCTL, UARTCTL)


class Clk(WordDevice):
    """The module enable registers that gate the modelled peripherals."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.regs: dict[int, int] = {off: _RESET.get(off, 0) for off in _MODELLED}

    def enabled(self, gate: str) -> bool:
        off, bit = GATES[gate]
        return bool(self.regs[off] & bit)

    def read32(self, offset: int, master: Master) -> int:
        return self.regs.get(offset, 0)

    def write32(self, offset: int, value: int, master: Master) -> None:
        if offset in self.regs:
            self.regs[offset] = value
