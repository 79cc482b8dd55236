"""SYS register write-protection, CLK module clocks and modelled time, as the M55M1 has them:
each test attacks code that would work on the old instant, always-open model and not on silicon."""

from __future__ import annotations

from pathlib import Path

import pytest

from nusec.provision.errors import BoardUnreachable
from nusec.provision.otp_writer import FmcIsp
from nusim import clk, fmc, keystore, memmap, sysctl
from nusim.board import Board
from tests.sim.sim_helpers import isp, isp_open, ks_open

FMC = memmap.FMC_BASE
REGLCTL = memmap.SYS_BASE + sysctl.REGLCTL


def _clock_isp(b: Board) -> None:
    b.write32(memmap.CLK_BASE + clk.FMCCTL, clk.FMCCTL_FMC0CKEN | clk.FMCCTL_ISP0CKEN)


def test_protected_fmc_registers_ignore_writes_until_unlocked(sim_dir: Path) -> None:
    with Board.open("p1", sim_dir) as b:
        _clock_isp(b)
        b.write32(FMC + fmc.ISPCTL, fmc.ISPCTL_ISPEN)
        assert b.read32(FMC + fmc.ISPCTL) == 0  # ignored: REGLCTL locked
        b.write32(FMC + fmc.ISPCMD, fmc.CMD_READ_UID)
        b.write32(FMC + fmc.ISPTRG, fmc.ISPTRG_ISPGO)
        assert b.read32(FMC + fmc.ISPTRG) == 0 and b.read32(FMC + fmc.ISPDAT) == 0  # never started
        for code in (0x59, 0x16, 0x87):  # a wrong last key does not unlock
            b.write32(REGLCTL, code)
        assert b.read32(REGLCTL) == 0
        for code in sysctl.UNLOCK_SEQUENCE:
            b.write32(REGLCTL, code)
        assert b.read32(REGLCTL) == 1
        b.write32(FMC + fmc.ISPCTL, fmc.ISPCTL_ISPEN)
        assert b.read32(FMC + fmc.ISPCTL) == fmc.ISPCTL_ISPEN
        b.write32(REGLCTL, 0)  # SYS_LockReg
        assert b.read32(REGLCTL) == 0
        isp_open(b)
        b.reset()  # a reset locks again
        assert b.read32(REGLCTL) == 0
        assert ("sys.unlock", "SYS_REGLCTL unlocked (59h 16h 88h) by the debugger") in b.trace


def test_a_peripheral_without_its_clock_is_inert(sim_dir: Path) -> None:
    with Board.open("p2", sim_dir) as b:
        for code in sysctl.UNLOCK_SEQUENCE:
            b.write32(REGLCTL, code)
        b.write32(FMC + fmc.ISPCTL, fmc.ISPCTL_ISPEN)  # ISP0CKEN is off at reset
        assert b.read32(FMC + fmc.ISPCTL) == 0
        b.write32(memmap.KS_BASE + keystore.CTL, keystore.CTL_INIT | keystore.CTL_START)
        assert b.read32(memmap.KS_BASE + keystore.STS) == 0  # KS0CKEN off: no INIT, no status
        _clock_isp(b)
        b.write32(FMC + fmc.ISPCTL, fmc.ISPCTL_ISPEN)
        assert b.read32(FMC + fmc.ISPCTL) == fmc.ISPCTL_ISPEN
        ks_open(b)  # with its clock the KeyStore initialises
        b.write32(memmap.CLK_BASE + clk.KSCTL, 0)
        assert b.read32(memmap.KS_BASE + keystore.STS) == 0


def test_isp_and_keystore_take_time_and_show_results_only_when_done(sim_dir: Path) -> None:
    with Board.open("p3", sim_dir) as b:
        isp_open(b)
        b.write32(FMC + fmc.ISPCTL, fmc.ISPCTL_ISPEN)
        b.write32(FMC + fmc.ISPADDR, 0)
        b.write32(FMC + fmc.ISPCMD, fmc.CMD_READ_UID)
        b.write32(FMC + fmc.ISPTRG, fmc.ISPTRG_ISPGO)
        assert b.read32(FMC + fmc.ISPDAT) == 0  # a read before ISPGO clears gets the old value
        polls = 0
        while b.read32(FMC + fmc.ISPTRG) & fmc.ISPTRG_ISPGO:
            polls += 1
        assert polls >= 1
        assert b.read32(FMC + fmc.ISPDAT) == int.from_bytes(b.uid[:4], "little")

        for off, bit in ((clk.KSCTL, clk.KSCTL_KS0CKEN),):
            b.write32(memmap.CLK_BASE + off, bit)
        b.write32(memmap.KS_BASE + keystore.CTL, keystore.CTL_INIT | keystore.CTL_START)
        sts = b.read32(memmap.KS_BASE + keystore.STS)
        assert sts & keystore.STS_BUSY and not sts & keystore.STS_INITDONE  # what a one-read snippet sees
        while b.read32(memmap.KS_BASE + keystore.STS) & keystore.STS_BUSY:
            pass
        assert b.read32(memmap.KS_BASE + keystore.STS) & keystore.STS_INITDONE


def test_host_writer_unlocks_and_enables_the_isp_clock_itself(sim_dir: Path) -> None:
    with Board.open("p4", sim_dir) as b:
        isp_ = FmcIsp(b)
        assert isp_.read_uid() == b.uid  # from reset: ISP clock off, registers locked
        assert isp_.unlocks == 1
        b.write32(REGLCTL, 0)  # board code closes the gate between two host commands
        assert isp_.read_uid() == b.uid
        assert isp_.unlocks == 2
        b.reset()
        assert isp_.read(memmap.OTP_BASE) == 0xFFFF_FFFF and isp_.unlocks == 3


class _StuckLock:
    """A memory port where REGLCTL never unlocks (e.g. a part whose SYS block misbehaves)."""

    def __init__(self, b: Board) -> None:
        self.b = b

    def read32(self, addr: int) -> int:
        return self.b.read32(addr)

    def write32(self, addr: int, value: int) -> None:
        if addr != REGLCTL:
            self.b.write32(addr, value)


def test_host_writer_stops_when_the_unlock_does_not_take(sim_dir: Path) -> None:
    with Board.open("p5", sim_dir) as b:
        with pytest.raises(BoardUnreachable, match="REGLCTL stays locked"):
            FmcIsp(_StuckLock(b)).read_uid()
        _, failed = isp(b, fmc.CMD_READ, memmap.OTP_BASE)
        assert not failed
