"""Security attribution of the M55M1: the core's SAU (core_cm55.h ``SAU_Type`` at SCS + 0xDD0,
8 regions as partition_M55M1_template.h's ``SAU_REGIONS_MAX``) and the part's IDAU, which per the
BSP's memory table (Source/GCC/M55M1.ld, column "IDAU") makes every address with bit 28 clear
Secure and its +0x10000000 alias Non-secure.

As Armv8-M defines it, an address gets the more secure of the two answers; with the SAU off it is
Secure unless ``CTRL.ALLNS`` is set. The SAU is volatile (cleared at reset) and Secure-only: a
non-secure access to its registers reads 0 and ignores writes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

SAU_BASE = 0xE000_EDD0  # core_cm55.h: SAU_BASE (SCS_BASE + 0x0DD0)
CTRL, TYPE, RNR, RBAR, RLAR = 0x00, 0x04, 0x08, 0x0C, 0x10
CTRL_ENABLE, CTRL_ALLNS = 1 << 0, 1 << 1
RLAR_ENABLE, RLAR_NSC = 1 << 0, 1 << 1
ADDR_MASK = 0xFFFF_FFE0  # RBAR.BADDR / RLAR.LADDR: bits 31:5 (32-byte granules)
SREGIONS = 8  # SAU_TYPE.SREGION


class Attr(enum.IntEnum):
    """Security attribution, ordered so that max() is the more secure one."""

    NS = 0
    NSC = 1
    S = 2


IDAU_NS_BIT = 0x1000_0000  # M55M1.h: NS_OFFSET; M55M1.ld: the +0x10000000 aliases are IDAU NS


def idau(addr: int) -> Attr:
    """The M55M1's IDAU: bit 28 selects the non-secure alias (ITCM, flash, SRAM, peripherals, EBI)."""
    return Attr.NS if addr & IDAU_NS_BIT else Attr.S


class Sau:
    """The SAU registers and the attribution they give."""

    def __init__(self, note: Callable[[str, str], None]) -> None:
        self._note = note
        self.reset()

    def reset(self) -> None:
        self.ctrl = 0
        self.rnr = 0
        self.rbar = [0] * SREGIONS
        self.rlar = [0] * SREGIONS

    def read32(self, offset: int) -> int:
        if offset == CTRL:
            return self.ctrl
        if offset == TYPE:
            return SREGIONS
        if offset == RNR:
            return self.rnr
        if offset == RBAR:
            return self.rbar[self.rnr]
        if offset == RLAR:
            return self.rlar[self.rnr]
        return 0

    def write32(self, offset: int, value: int, who: str) -> None:
        if offset == CTRL:
            self.ctrl = value & (CTRL_ENABLE | CTRL_ALLNS)
            self._note("sau", f"CTRL = 0x{self.ctrl:08x} written by the {who}")
        elif offset == RNR:
            self.rnr = value & 0xFF if (value & 0xFF) < SREGIONS else self.rnr
        elif offset == RBAR:
            self.rbar[self.rnr] = value & ADDR_MASK
        elif offset == RLAR:
            self.rlar[self.rnr] = value & (ADDR_MASK | RLAR_NSC | RLAR_ENABLE)
            if value & RLAR_ENABLE:
                kind = "NSC" if value & RLAR_NSC else "NS"
                lo, hi = self.rbar[self.rnr], (value & ADDR_MASK) | 0x1F
                self._note("sau", f"region {self.rnr} 0x{lo:08x}-0x{hi:08x} {kind} written by the {who}")

    def attribute(self, addr: int) -> Attr:
        """The SAU's own answer for ``addr`` (before the IDAU is combined in)."""
        if not self.ctrl & CTRL_ENABLE:
            return Attr.NS if self.ctrl & CTRL_ALLNS else Attr.S
        hits = [
            n
            for n in range(SREGIONS)
            if self.rlar[n] & RLAR_ENABLE and self.rbar[n] <= addr <= (self.rlar[n] & ADDR_MASK) | 0x1F
        ]
        if len(hits) != 1:
            return Attr.S  # no region, or overlapping regions: Secure
        return Attr.NSC if self.rlar[hits[0]] & RLAR_NSC else Attr.NS
