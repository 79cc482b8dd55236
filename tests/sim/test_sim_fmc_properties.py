"""Write-once physics of the OTP behind the FMC, under random command sequences (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nusim import clk, fmc, memmap, sysctl
from nusim.board import Board, Master
from nusim.nvstate import NvState

ENTRIES = 4  # a few entries so that sequences collide often
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("program"), st.integers(0, ENTRIES * 2 - 1), st.integers(0, 0xFFFF_FFFF)),
        st.tuples(st.just("lock"), st.integers(0, ENTRIES - 1), st.integers(0, 0xFFFF_FFFF)),
        st.tuples(st.just("program64"), st.integers(0, ENTRIES - 1), st.integers(0, (1 << 64) - 1)),
    ),
    max_size=25,
)


def _isp(b: Board, cmd: int, addr: int, data: int = 0, mp: tuple[int, int] = (0, 0)) -> bool:
    base = memmap.FMC_BASE
    if not b.read32(memmap.SYS_BASE + sysctl.REGLCTL, Master.CPU):
        b.write32(memmap.CLK_BASE + clk.FMCCTL, clk.FMCCTL_ISP0CKEN, Master.CPU)
        for code in sysctl.UNLOCK_SEQUENCE:
            b.write32(memmap.SYS_BASE + sysctl.REGLCTL, code, Master.CPU)
    b.write32(base + fmc.ISPCTL, fmc.ISPCTL_ISPEN | fmc.ISPCTL_ISPFF, Master.CPU)
    b.write32(base + fmc.ISPCMD, cmd, Master.CPU)
    b.write32(base + fmc.ISPADDR, addr, Master.CPU)
    b.write32(base + fmc.ISPDAT, data, Master.CPU)
    b.write32(base + fmc.MPDAT0, mp[0], Master.CPU)
    b.write32(base + fmc.MPDAT1, mp[1], Master.CPU)
    b.write32(base + fmc.ISPTRG, 1, Master.CPU)
    while b.read32(base + fmc.ISPTRG, Master.CPU) & fmc.ISPTRG_ISPGO:
        pass
    return not b.read32(base + fmc.ISPCTL, Master.CPU) & fmc.ISPCTL_ISPFF


def _word(b: Board, i: int) -> int:
    return int.from_bytes(b.nv.otp[4 * i : 4 * i + 4], "little")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_otp_words_change_at_most_once_and_never_after_lock(ops: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as d, Board.open("prop", Path(d), power_on=False) as b:
        b.nv = NvState()
        written: dict[int, int] = {}
        locked: set[int] = set()
        for kind, n, value in ops:
            before = [_word(b, i) for i in range(ENTRIES * 2)]
            if kind == "program":
                ok = _isp(b, fmc.CMD_PROGRAM, memmap.OTP_BASE + 4 * n, value)
                expect_ok = n not in written and n // 2 not in locked
                words = {n: value}
            elif kind == "program64":
                lo, hi = value & 0xFFFF_FFFF, value >> 32
                ok = _isp(b, fmc.CMD_PROGRAM_64, memmap.OTP_BASE + 8 * n, mp=(lo, hi))
                expect_ok = 2 * n not in written and 2 * n + 1 not in written and n not in locked
                words = {2 * n: lo, 2 * n + 1: hi}
            else:
                ok = _isp(b, fmc.CMD_PROGRAM, memmap.OTP_LOCK_BASE + 4 * n, value)
                lock_word = int.from_bytes(b.nv.otp_locks[4 * n : 4 * n + 4], "little")
                expect_ok = n not in locked
                if ok and lock_word != 0xFFFF_FFFF:
                    locked.add(n)
                words = {}
            assert ok == expect_ok, (kind, n, value)
            after = [_word(b, i) for i in range(ENTRIES * 2)]
            for i in range(ENTRIES * 2):
                if ok and i in words:
                    assert after[i] == words[i]  # blank & value == value
                    if after[i] != 0xFFFF_FFFF:
                        written[i] = after[i]
                else:
                    assert after[i] == before[i], "a refused or unrelated command changed OTP"
                assert after[i] & ~before[i] == 0, "an OTP bit went 0 -> 1"
