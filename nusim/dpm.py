"""DPM, the Debug Protection Mechanism (M55M1 ``DPM_BASE`` 0x40402600, scu_reg.h ``DPM_T``,
StdDriver scu/dpm.c): debug disable and debug lock, in a secure and a non-secure instance.

``CTL`` (+0x00, secure) and ``NSCTL`` (+0x50, also reachable as ``DPM_NS`` = DPM_BASE + 0x50
through the non-secure alias): DBGDIS b0, LOCK b1; a write takes effect only with the write
verify code 0x5A in RWVCODE (b31:24), and reads show 0xA5 there. ``STS`` (+0x04) / ``NSSTS``
(+0x54): BUSY b0 (never set here), DBGDIS b16, LOCK b17. Both bits only ever get set (no
password compare is modelled, so a lock is never lifted) and are kept in the part across power
cycles (``NvState.dpm``). As dpm.c documents, they work after the next reset: the board latches
them then (``Board.dpm_latched``). A secure lock or disable keeps the debugger out of the secure
world (it may still reach non-secure addresses); a non-secure one keeps it out of both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nusim.board import Master, WordDevice

if TYPE_CHECKING:
    from nusim.board import Board

CTL, STS, NSCTL, NSSTS = 0x00, 0x04, 0x50, 0x54
CTL_DBGDIS, CTL_LOCK = 1 << 0, 1 << 1
CTL_RWVCODE_POS = 24
WVCODE, RVCODE = 0x5A, 0xA5
STS_BUSY, STS_DBGDIS, STS_LOCK = 1 << 0, 1 << 16, 1 << 17
SCU_PAGE = 0x4040_2000  # the 4 KiB page the DPM sits in (SCU_BASE); the bus maps whole pages
DPM_OFFSET = 0x600  # DPM_BASE - SCU_BASE


class Dpm(WordDevice):
    """The DPM registers in the SCU page (the rest of that page reads 0); ``ns_view`` is the page's
    non-secure alias, where only the non-secure instance answers."""

    def __init__(self, board: Board, *, ns_view: bool = False) -> None:
        self.board = board
        self.ns_view = ns_view

    def _state(self, world: str) -> tuple[bool, bool]:
        dpm = self.board.nv.dpm
        return dpm[f"{world}_dbgdis"], dpm[f"{world}_lock"]

    def read32(self, offset: int, master: Master) -> int:
        offset -= DPM_OFFSET
        regs = {NSCTL: "ns", NSSTS: "ns"} if self.ns_view else {CTL: "s", STS: "s", NSCTL: "ns", NSSTS: "ns"}
        world = regs.get(offset)
        if world is None:
            return 0
        dbgdis, lock = self._state(world)
        if offset in (CTL, NSCTL):
            return (RVCODE << CTL_RWVCODE_POS) | (CTL_DBGDIS if dbgdis else 0) | (CTL_LOCK if lock else 0)
        return (STS_DBGDIS if dbgdis else 0) | (STS_LOCK if lock else 0)

    def write32(self, offset: int, value: int, master: Master) -> None:
        offset -= DPM_OFFSET
        if offset == CTL and not self.ns_view:
            world = "s"
        elif offset == NSCTL:
            world = "ns"
        else:
            return
        if (value >> CTL_RWVCODE_POS) & 0xFF != WVCODE:
            return  # no write verify code: ignored
        dpm = self.board.nv.dpm
        changed = False
        for bit, key in ((CTL_DBGDIS, f"{world}_dbgdis"), (CTL_LOCK, f"{world}_lock")):
            if value & bit and not dpm[key]:
                dpm[key] = True
                changed = True
        if changed:
            self.board.note("dpm", f"{'non-secure' if world == 'ns' else 'secure'} debug {dpm}")
            self.board.commit_nv()
