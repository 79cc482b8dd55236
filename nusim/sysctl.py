"""SYS, the system manager (M55M1 ``SYS_BASE`` 0x40000000): the register write-protection.

``REGLCTL`` (+0x100) opens the protected registers when 0x59, 0x16, 0x88 are written to it in
that order (sys_reg.h, ``SYS_UnlockReg``); it then reads 1. Writing the sequence again keeps them
open (``SYS_UnlockReg`` writes it even when already open); any other value, and every reset,
closes them again (``SYS_LockReg`` writes 0). While closed, writes to a protected register are
ignored, as the part ignores them: here FMC ``ISPCTL`` and ``ISPTRG`` (fmc_reg.h, "Write
Protect"). The gate applies to every bus master, the debugger included. ``PDID`` (+0x00) reads
the simulated part id.
"""

from __future__ import annotations

from collections.abc import Callable

from nusim.board import Master, WordDevice

PDID, RSTSTS, REGLCTL = 0x000, 0x008, 0x100
UNLOCK_SEQUENCE = (0x59, 0x16, 0x88)
PART_ID = 0x0055_5100  # simulated M55S1-like part id (not a Nuvoton-assigned number)
RSTSTS_PORF = 1 << 0  # power-on reset flag


class Sys(WordDevice):
    """The SYS block: the unlock state machine and the part id."""

    def __init__(self, note: Callable[[str, str], None] | None = None) -> None:
        self._note = note or (lambda _kind, _detail: None)
        self.reset()

    def reset(self) -> None:
        self.unlocked = False
        self._seq = 0
        self.rststs = RSTSTS_PORF
        self.unlocks = 0  # completed unlock sequences since power-on (for traces and tests)

    def read32(self, offset: int, master: Master) -> int:
        if offset == PDID:
            return PART_ID
        if offset == RSTSTS:
            return self.rststs
        if offset == REGLCTL:
            return 1 if self.unlocked else 0
        return 0

    def write32(self, offset: int, value: int, master: Master) -> None:
        if offset == RSTSTS:
            self.rststs &= ~value  # write 1 to clear
        elif offset == REGLCTL:
            self._reglctl(value & 0xFF, master)

    def _reglctl(self, code: int, master: Master) -> None:
        if self.unlocked:
            if code not in UNLOCK_SEQUENCE:
                self.unlocked = False  # SYS_LockReg writes 0: any other value closes the gate
                self._seq = 0
                self._note("sys.lock", f"SYS_REGLCTL locked by the {master.value}")
            return  # the sequence written again (SYS_UnlockReg always writes it) keeps it open
        if code == UNLOCK_SEQUENCE[self._seq]:
            self._seq += 1
            if self._seq == len(UNLOCK_SEQUENCE):
                self.unlocked = True
                self.unlocks += 1
                self._seq = 0
                self._note("sys.unlock", f"SYS_REGLCTL unlocked (59h 16h 88h) by the {master.value}")
        else:
            self._seq = 1 if code == UNLOCK_SEQUENCE[0] else 0
