"""The Debug Protection Mechanism (scu/dpm.c): debug lock in the secure and the non-secure
instance, effective from the next reset and kept across power cycles. After the non-secure lock
pyocd still connects, but every memory access faults in both security states."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyocd.core import exceptions

from nusim import dpm, memmap, sau
from nusim.board import Board, Master
from tests.sim.sim_helpers import session

S_CTL = memmap.DPM_BASE + dpm.CTL
NS_CTL = memmap.DPM_BASE + dpm.NSCTL + memmap.NS_ALIAS  # DPM_NS->CTL (M55M1.h: DPM_BASE + 0x50 + NS_OFFSET)
LOCK = (dpm.WVCODE << dpm.CTL_RWVCODE_POS) | dpm.CTL_LOCK
SECURE = (memmap.SRAM_BASE, memmap.FLASH_BASE, memmap.KS_BASE, memmap.FMC_BASE)
NON_SECURE = (memmap.FMC_BASE + memmap.NS_ALIAS, memmap.KS_BASE + memmap.NS_ALIAS)


def test_writes_need_the_verify_code_and_take_effect_at_reset(sim_dir: Path) -> None:
    with Board.open("d1", sim_dir) as b:
        b.write32(S_CTL, dpm.CTL_LOCK)  # no 0x5A in RWVCODE: ignored
        assert b.read32(memmap.DPM_BASE + dpm.STS) == 0
        b.write32(S_CTL, LOCK)
        assert b.read32(memmap.DPM_BASE + dpm.STS) == dpm.STS_LOCK
        assert b.read32(S_CTL) == (dpm.RVCODE << dpm.CTL_RWVCODE_POS) | dpm.CTL_LOCK
        assert b.read32(memmap.SRAM_BASE) == 0  # not yet: DPM works after the next reset
        b.reset()
        for addr in SECURE:  # the secure world is closed to the debugger ...
            with pytest.raises(Exception, match="DPM"):
                b.read32(addr)
        for addr in NON_SECURE:  # ... the non-secure world is not, but the SAU is still closed ...
            with pytest.raises(Exception, match="non-secure debugger access"):
                b.read32(addr)
        b.write32(sau.SAU_BASE + sau.CTRL, sau.CTRL_ALLNS, Master.CPU)  # ... until secure code opens it
        for addr in NON_SECURE:
            b.read32(addr)
        b.write32(memmap.DPM_BASE + memmap.NS_ALIAS + dpm.CTL, LOCK)  # secure CTL: not through the NS alias
        assert not b.nv.dpm["ns_lock"] and not b.nv.dpm["ns_dbgdis"]


def test_non_secure_debug_lock_closes_both_worlds_but_pyocd_still_connects(sim_dir: Path) -> None:
    with session("d2") as s:
        t = s.target
        t.write32(memmap.SRAM_BASE, 0x1234)
        t.write32(S_CTL, LOCK)
        t.write32(NS_CTL, LOCK)
        assert t.read32(memmap.DPM_BASE + dpm.NSSTS) & dpm.STS_LOCK
        assert t.read32(memmap.SRAM_BASE) == 0x1234
        t.reset()
        for addr in (*SECURE, *NON_SECURE):
            with pytest.raises(exceptions.TransferFaultError):
                t.read32(addr)
    with session("d2", connect_mode="attach") as s:  # power cycle: still locked, still connects
        t = s.target
        assert t.read32(0xE000_ED00) == 0x411F_D220
        for addr in (*SECURE, *NON_SECURE):
            with pytest.raises(exceptions.TransferFaultError):
                t.read32(addr)
            with pytest.raises(exceptions.TransferFaultError):
                t.write32(addr, 0)


@pytest.mark.parametrize(("policy", "dpm_locked"), [(0x3, True), (0x1, False)])
def test_the_lock_step_sets_the_dpm_lock_when_the_otp_policy_asks(
    sim_dir: Path, policy: int, dpm_locked: bool
) -> None:
    """nusec.provision.lock: "debug lock on seal" (policy bit 1 of OTP entry 27) means the DPM
    debug lock in both instances, then the all-region lock word."""
    from nusec.provision.lock import ARLOCK_ADDR, enable_secure_lock
    from nusec.provision.otp_writer import FmcIsp, ProgramLog

    with Board.open(f"d3{policy}", sim_dir) as b:
        isp = FmcIsp(b)
        isp.program(memmap.OTP_BASE + 27 * 8, policy)
        enable_secure_lock(isp, ProgramLog())
        assert b.nv.dpm["s_lock"] is dpm_locked and b.nv.dpm["ns_lock"] is dpm_locked
        assert isp.read(ARLOCK_ADDR) & 0xFF != 0x5A
        b.reset()
        assert b.dpm_latched == (dpm_locked, dpm_locked)
        with pytest.raises(Exception, match="DPM" if dpm_locked else "secure lock"):
            b.read32(memmap.SRAM_BASE)
