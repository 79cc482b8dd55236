"""The Armv8-M Security Extension as the debugger sees it on the M55M1: pyocd detects it (ID_PFR1,
DSCSR, DHCSR.S_SDE, DAUTHSTATUS), the SAU and the M55M1 IDAU (bit 28 of the address, M55M1.ld)
attribute every address, and a non-secure debugger access (CSW.HNONSEC = 1) to a Secure address
faults; the same SRAM reads back through its secure and its non-secure alias."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyocd.core import exceptions
from pyocd.core.target import Target
from pyocd.coresight.core_ids import CortexMExtension

from nusim import dpm, memmap, sau
from nusim.board import Board, Master
from tests.sim.sim_helpers import session

S_SRAM = 0x2010_0000  # SRAM01 (M55M1.ld: IDAU S)
NS_SRAM = S_SRAM + memmap.NS_ALIAS  # its non-secure alias (IDAU NS)
SAU_CTRL, SAU_TYPE, SAU_RNR, SAU_RBAR, SAU_RLAR = (sau.SAU_BASE + o for o in (0x0, 0x4, 0x8, 0xC, 0x10))
DSCSR, DAUTHCTRL, DAUTHSTATUS, DHCSR = 0xE000_EE08, 0xE000_EE04, 0xE000_EFB8, 0xE000_EDF0


def open_ns_sram(write: object, base: int = NS_SRAM, limit: int = NS_SRAM + 0xFFFF) -> None:
    """What the secure firmware's TZ_SAU_Setup does for one region (partition_M55M1.h): NS."""
    assert callable(write)
    write(SAU_RNR, 0)
    write(SAU_RBAR, base)
    write(SAU_RLAR, (limit & ~0x1F) | sau.RLAR_ENABLE)
    write(SAU_CTRL, sau.CTRL_ENABLE)


@pytest.fixture()
def tz(sim_dir: Path) -> Iterator[Board]:
    with Board.open("tz2", sim_dir) as b:
        yield b


def test_pyocd_detects_the_security_extension(sim_dir: Path) -> None:
    with session("tz3") as s:
        core = s.target.selected_core
        assert CortexMExtension.SEC in core.extensions
        assert core.supported_security_states == (Target.SecurityState.NONSECURE, Target.SecurityState.SECURE)
        assert core.get_security_state() is Target.SecurityState.SECURE  # DSCSR.CDS: the core runs Secure
        t = s.target
        assert t.read32(DHCSR) & (1 << 20)  # S_SDE: secure debug enabled
        assert t.read32(DAUTHSTATUS) & 0xFF == 0xFF  # SNID, SID, NSNID, NSID: implemented and enabled
        t.write32(DSCSR, 0x3)  # SBRSELEN, SBRSEL
        assert t.read32(DSCSR) == 0x0001_0003
        t.write32(DSCSR, 0x0)  # CDSKEY = 0 with CDS = 0: the core cannot leave Secure state here
        assert t.read32(DSCSR) == 0x0001_0000
        assert t.read32(SAU_TYPE) == sau.SREGIONS == 8
        assert core.ap.is_enabled_for(Target.SecurityState.SECURE)  # CSW.SDEVICEEN


def test_pyocd_reads_and_writes_memory_in_both_security_states(sim_dir: Path) -> None:
    with session("tz4") as s:
        t, ap = s.target, s.target.selected_core.ap
        open_ns_sram(t.write32)
        with ap.secure_lock():
            t.write32(S_SRAM, 0x5EC0_0001)
        with ap.nonsecure_lock():
            assert t.read32(NS_SRAM) == 0x5EC0_0001  # same bank through the NS alias
            t.write32(NS_SRAM + 4, 0x0A5E_C002)
            with pytest.raises(exceptions.TransferFaultError):
                t.read32(S_SRAM)  # IDAU: Secure
            with pytest.raises(exceptions.TransferFaultError):
                t.read32(NS_SRAM + 0x1_0000)  # IDAU NS, but no SAU region: Secure
            assert t.read32(SAU_CTRL) == 0  # the SAU is Secure-only: RAZ/WI for NS accesses
        with ap.secure_lock():
            assert t.read32(S_SRAM + 4) == 0x0A5E_C002
            assert t.read32(SAU_CTRL) == sau.CTRL_ENABLE


def test_non_secure_debug_access_faults_while_the_sau_is_off(tz: Board) -> None:
    for addr in (S_SRAM, NS_SRAM, memmap.FMC_BASE + memmap.NS_ALIAS, memmap.FLASH_BASE + memmap.NS_ALIAS):
        with pytest.raises(Exception, match="non-secure"):
            tz.read_memory(addr, 4, secure=False)
    tz.write32(SAU_CTRL, sau.CTRL_ALLNS)  # ALLNS: the IDAU alone decides
    tz.write_memory(NS_SRAM, b"\x01\x02\x03\x04", secure=False)
    assert tz.read_memory(S_SRAM, 4) == b"\x01\x02\x03\x04"
    flash_ns = memmap.FLASH_BASE + memmap.NS_ALIAS  # the same flash bank through its NS alias
    assert tz.read_memory(flash_ns, 64, secure=False) == tz.read_memory(memmap.FLASH_BASE, 64)
    with pytest.raises(Exception, match="non-secure"):
        tz.read_memory(S_SRAM, 4, secure=False)


def test_sau_attribution_follows_the_regions(tz: Board) -> None:
    assert tz.attribution(NS_SRAM) is sau.Attr.S  # SAU off, ALLNS 0: everything Secure
    open_ns_sram(tz.write32, NS_SRAM, NS_SRAM + 0xFFF)
    tz.write32(SAU_RNR, 1)
    tz.write32(SAU_RBAR, NS_SRAM + 0x1000)
    tz.write32(SAU_RLAR, (NS_SRAM + 0x1FFF) | sau.RLAR_NSC | sau.RLAR_ENABLE)
    assert tz.read32(SAU_RBAR) == NS_SRAM + 0x1000 and tz.read32(SAU_RNR) == 1
    assert tz.attribution(NS_SRAM + 0xFFC) is sau.Attr.NS
    assert tz.attribution(NS_SRAM + 0x1000) is sau.Attr.NSC
    assert tz.attribution(NS_SRAM + 0x2000) is sau.Attr.S
    tz.write32(SAU_RBAR, S_SRAM)  # a region over an IDAU-Secure address: the IDAU wins
    tz.write32(SAU_RLAR, (S_SRAM + 0xFFF) | sau.RLAR_ENABLE)
    assert tz.attribution(S_SRAM) is sau.Attr.S
    tz.write32(SAU_RBAR, NS_SRAM)  # overlapping regions: Secure
    tz.write32(SAU_RLAR, NS_SRAM + 0xFFF | sau.RLAR_ENABLE)
    assert tz.attribution(NS_SRAM) is sau.Attr.S
    tz.reset()  # the SAU is volatile
    assert tz.read32(SAU_CTRL) == 0 and tz.attribution(NS_SRAM) is sau.Attr.S


def test_the_cpu_runs_secure_and_programs_the_sau(tz: Board) -> None:
    open_ns_sram(lambda a, v: tz.write32(a, v, Master.CPU))
    assert tz.read32(SAU_CTRL, Master.CPU) == sau.CTRL_ENABLE
    assert tz.attribution(NS_SRAM) is sau.Attr.NS


def test_secure_dpm_lock_turns_secure_debug_off(tz: Board) -> None:
    tz.write32(memmap.DPM_BASE + dpm.CTL, (dpm.WVCODE << dpm.CTL_RWVCODE_POS) | dpm.CTL_LOCK)
    tz.reset()
    assert not tz.read32(DHCSR) & (1 << 20)
    assert tz.read32(DAUTHSTATUS) & 0xFF == 0xAF  # SNID, SID = 0b10: implemented, disabled
    with pytest.raises(Exception, match="DPM"):
        tz.read32(S_SRAM)


def test_attribution_events_are_traced(tz: Board) -> None:
    tz.read32(S_SRAM)
    tz.write32(SAU_CTRL, sau.CTRL_ALLNS)
    tz.read_memory(NS_SRAM, 4, secure=False)
    with pytest.raises(Exception, match="non-secure"):
        tz.read_memory(S_SRAM, 4, secure=False)
    events = [d for k, d in tz.trace if k == "attribution"]
    assert "debugger Secure access to SRAM 0x20100000: IDAU S, SAU S -> S, allowed" in events
    assert "debugger Non-secure access to SRAM 0x30100000: IDAU NS, SAU NS -> NS, allowed" in events
    assert "debugger Non-secure access to SRAM 0x20100000: IDAU S, SAU NS -> S, fault" in events
    assert any(k == "sau" and "CTRL = 0x00000002" in d for k, d in tz.trace)


def test_dauthctrl_is_for_secure_software_and_cleared_at_reset(tz: Board) -> None:
    tz.write32(DAUTHCTRL, 0x1)  # the debugger cannot turn its own secure debug off (or on)
    assert tz.read32(DAUTHCTRL) == 0 and tz.secure_debug
    tz.write32(DAUTHCTRL, 0x1, Master.CPU)  # SPIDENSEL with INTSPIDEN 0: secure debug off
    assert not tz.read32(DHCSR) & (1 << 20) and tz.read32(DAUTHSTATUS) & 0xF0 == 0xA0
    with pytest.raises(Exception, match="DAUTHCTRL turned secure debug off"):
        tz.read32(S_SRAM)
    tz.reset()
    assert tz.read32(DAUTHCTRL) == 0 and tz.secure_debug


def test_leaving_secure_state_is_refused_and_traced(tz: Board) -> None:
    tz.write32(DSCSR, 0x0)
    assert tz.read32(DSCSR) == 0x0001_0000
    assert any(k == "dscsr" for k, _ in tz.trace)


def test_one_register_bank_whatever_sbrsel_says(tz: Board) -> None:
    def reg(sel: int) -> int:
        tz.write32(0xE000_EDF4, sel)  # DCRSR read
        return tz.read32(0xE000_EDF8)  # DCRDR

    tz.write32(0xE000_EDF8, 0x2000_1000)
    tz.write32(0xE000_EDF4, 13 | (1 << 16))  # DCRSR write (REGWNR): SP
    tz.write32(DSCSR, 0x1)  # SBRSELEN with SBRSEL 0 (Non-secure bank) selects nothing here
    assert reg(13) == 0x2000_1000
    assert [reg(s) for s in (0x18, 0x19, 0x1A, 0x1B)] == [0, 0, 0, 0]  # MSP_NS, PSP_NS, MSP_S, PSP_S


def test_pyocd_memory_map_lists_both_aliases_with_their_security(sim_dir: Path) -> None:
    with session("tz5") as s:
        mm = s.target.memory_map
        for addr, secure in ((memmap.FLASH_BASE, True), (S_SRAM, True), (memmap.KS_BASE, True)):
            assert mm.get_region_for_address(addr).is_secure is secure
            assert mm.get_region_for_address(addr + memmap.NS_ALIAS).is_nonsecure is secure
