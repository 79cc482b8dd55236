"""The simulated probe as a CMSIS-DAP probe: pyocd's DP and MEM-AP code (CSW/TAR/DRW) does every
memory access, and the DP/AP registers behave as ADIv5 says (issue 15, first part)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyocd.core import exceptions
from pyocd.core.session import Session
from pyocd.coresight import ap as pyocd_ap
from pyocd.coresight import dap as pyocd_dap
from pyocd.probe.aggregator import DebugProbeAggregator

from nuboard import protocol
from nusim import dap, memmap, sau, wire
from nusim.probe_plugin import SimProbe

SRAM = memmap.SRAM_BASE
KS = memmap.KS_BASE


def _probe(name: str) -> SimProbe:
    probes = DebugProbeAggregator.get_all_connected_probes(unique_id=f"sim:{name}")
    (probe,) = [p for p in probes if p.unique_id == f"sim:{name}"]
    assert isinstance(probe, SimProbe)
    return probe


def _open(name: str, **options: object) -> Session:
    session = Session(_probe(name), options={"connect_mode": "attach", **options})
    session.open()
    return session


@pytest.fixture
def session(sim_dir: Path) -> Iterator[Session]:
    s = _open("d1")
    try:
        yield s
    finally:
        s.close()


def _ap(session: Session) -> pyocd_ap.MEM_AP:
    (ap,) = session.target.aps.values()
    assert isinstance(ap, pyocd_ap.MEM_AP)
    return ap


def _wire(session: Session) -> wire.Wire:
    probe = session.probe
    assert isinstance(probe, SimProbe)
    return probe.wire


def _dap(session: Session) -> dap.Dap:
    probe = session.probe
    assert isinstance(probe, SimProbe) and probe.dap is not None
    return probe.dap


def test_pyocd_discovers_the_ahb5_ap_and_the_v8m_core_through_dp_and_ap_registers(session: Session) -> None:
    ap = _ap(session)
    assert isinstance(ap, pyocd_ap.AHB_AP)
    assert ap.idr == dap.AHB5_AP_IDR and ap.rom_addr == memmap.ROM_TABLE_BASE
    assert ap._accelerated_memory_interface is None  # no direct memory interface
    assert ap.implemented_hnonsec_mask == 1  # pyocd found HNONSEC writable
    assert {8, 16, 32} <= ap.supported_transfer_sizes
    core = session.target.cores[0]
    assert type(core).__name__ == "CortexM_v8M" and core.has_security_extension
    names = {c.name for c in ap.rom_table.components} if ap.rom_table else set()
    assert names  # the ROM table was walked through TAR/DRW
    regs = _wire(session).registers
    for key in (
        "R DP.IDR",
        "W DP.ABORT",
        "W DP.CTRL/STAT",
        "W DP.SELECT",
        "R AP0.IDR",
        "W AP0.TAR",
        "R AP0.DRW",
    ):
        assert regs[key] > 0, key
    caps = session.probe.capabilities  # pyocd selects the AP and DP bank itself, as with CMSIS-DAP
    assert SimProbe.Capability.MANAGED_AP_SELECTION not in caps
    assert SimProbe.Capability.MANAGED_DPBANKSEL not in caps


def test_the_direct_memory_interface_is_an_explicit_option(sim_dir: Path) -> None:
    s = _open("d2", **{"sim.direct_memory": True})
    try:
        ap = _ap(s)
        assert ap._accelerated_memory_interface is not None
        before = _wire(s).registers["R AP0.DRW"]
        s.target.read32(SRAM)
        assert _wire(s).registers["R AP0.DRW"] == before  # bypassed pyocd's MEM-AP code
    finally:
        s.close()


def test_sub_word_accesses_use_their_byte_lanes(session: Session) -> None:
    t = session.target
    t.write32(SRAM, 0x0000_0000)
    t.write8(SRAM + 1, 0xAB)
    t.write16(SRAM + 2, 0xCDEF)
    assert t.read32(SRAM) == 0xCDEF_AB00
    assert t.read8(SRAM + 3) == 0xCD and t.read16(SRAM) == 0xAB00


def test_tar_auto_increment_wraps_at_the_1k_boundary(session: Session) -> None:
    """Three words from TAR = 0x3FC: ADIv5 guarantees the increment of TAR[9:0] only; this AP
    wraps there, so words 2 and 3 land at the start of the same 1 KiB block."""
    ap = _ap(session)
    t = session.target
    t.write_memory_block32(SRAM, [0] * 2)
    t.write_memory_block32(SRAM + 0x400, [0])
    ap.write_reg(pyocd_ap.MEM_AP_CSW, ap._csw | pyocd_ap.CSW_SIZE32)
    ap.write_reg(pyocd_ap.MEM_AP_TAR, SRAM + 0x3FC)
    ap.dp.write_ap_multiple(ap.address.address + pyocd_ap.MEM_AP_DRW, [0x11111111, 0x22222222, 0x33333333])
    assert ap.read_reg(pyocd_ap.MEM_AP_TAR) == SRAM + 0x008
    assert t.read_memory_block32(SRAM, 2) == [0x22222222, 0x33333333]
    assert t.read32(SRAM + 0x3FC) == 0x11111111 and t.read32(SRAM + 0x400) == 0


def test_a_block_across_1k_boundaries_is_split_by_pyocd_and_lands_whole(session: Session) -> None:
    t = session.target
    words = list(range(1, 601))  # 2400 bytes from 0x...3F0: crosses 0x400, 0x800 and 0xC00
    tar0 = _wire(session).registers["W AP0.TAR"]
    t.write_memory_block32(SRAM + 0x3F0, words)
    assert t.read_memory_block32(SRAM + 0x3F0, 600) == words
    assert _wire(session).registers["W AP0.TAR"] - tar0 == 2 * 4  # one TAR per 1 KiB page, both ways


def test_a_bus_fault_sets_stickyerr_and_pyocd_clears_it_through_abort(session: Session) -> None:
    t = session.target
    regs = _wire(session).registers
    aborts = regs["W DP.ABORT"]
    with pytest.raises(exceptions.TransferFaultError) as err:
        t.read32(0x6000_0000)  # nothing mapped
    assert err.value.fault_address == 0x6000_0000
    assert regs["W DP.ABORT"] > aborts  # pyocd's _handle_error -> clear_sticky_err (DP and MEM-AP each)
    assert not _dap(session).ctrl_stat & dap.STICKYERR
    t.write32(SRAM, 0x5A5A5A5A)
    assert t.read32(SRAM) == 0x5A5A5A5A


def test_while_stickyerr_is_set_every_ap_access_answers_fault(session: Session) -> None:
    """At the wire, below pyocd: the DP refuses AP accesses until ABORT.STKERRCLR."""
    probe = session.probe
    probe.write_dp(pyocd_dap.DP_SELECT, 0)
    probe.write_ap(pyocd_ap.MEM_AP_TAR, 0x6000_0000)
    with pytest.raises(exceptions.TransferFaultError):
        probe.read_ap(pyocd_ap.MEM_AP_DRW)
    assert probe.read_dp(pyocd_dap.DP_CTRL_STAT) & dap.STICKYERR
    with pytest.raises(exceptions.TransferFaultError):
        probe.read_ap(pyocd_ap.MEM_AP_CSW)  # an innocent access is refused too
    with pytest.raises(exceptions.TransferFaultError):
        probe.read_dp(pyocd_dap.DP_RDBUFF)
    assert probe.read_dp(pyocd_dap.DP_IDR) == dap.DPIDR_VALUE  # IDR and CTRL/STAT stay readable
    probe.write_dp(pyocd_dap.DP_ABORT, pyocd_dap.ABORT_STKERRCLR)
    assert probe.read_ap(pyocd_ap.MEM_AP_CSW) & dap.CSW_DEVICEEN


def test_wait_acks_are_retried_then_reported_as_pyocd_reports_a_timeout(session: Session) -> None:
    t = session.target
    w = _wire(session)
    t.write32(SRAM, 7)
    waits0, bits0 = w.waits, w.swd_bits
    _dap(session).stall(dap.WAIT_RETRY)  # within the probe's retries: invisible to pyocd
    assert t.read32(SRAM) == 7
    assert w.waits - waits0 == dap.WAIT_RETRY
    assert w.swd_bits - bits0 >= dap.WAIT_RETRY * wire.WAIT_BITS
    aborts = w.registers["W DP.ABORT"]
    _dap(session).stall(dap.WAIT_RETRY + 1)
    with pytest.raises(exceptions.TransferTimeoutError):
        t.read32(SRAM)
    assert w.registers["W DP.ABORT"] > aborts  # pyocd wrote DAPABORT
    assert t.read32(SRAM) == 7  # and the AP works again


def test_a_non_secure_access_to_the_keystore_faults_a_secure_one_does_not(session: Session) -> None:
    t = session.target
    ap = _ap(session)
    assert _dap(session)._csw_value() & dap.CSW_SDEVICEEN  # secure debug enabled on a fresh part
    t.read32(KS)  # Secure (HNONSEC = 0): allowed
    t.write32(sau.SAU_BASE + sau.CTRL, sau.CTRL_ALLNS)  # SAU off, ALLNS = 1: the IDAU decides
    with ap.nonsecure_lock():
        t.write32(SRAM + memmap.NS_ALIAS, 1)  # the non-secure SRAM alias is not a fault...
        assert _dap(session).csw & dap.CSW_HNONSEC  # ...and HNONSEC crossed the wire in CSW
        with pytest.raises(exceptions.TransferFaultError) as err:
            t.read32(KS)
        assert "non-secure debugger access to a Secure address" in str(err.value)
    t.read32(KS)  # Secure again after the lock: HNONSEC back to 0
    assert not _dap(session).csw & dap.CSW_HNONSEC


def test_the_core_reports_the_security_extension_and_dscsr(session: Session) -> None:
    from pyocd.core.target import Target

    t = session.target
    core = t.cores[0]
    assert Target.SecurityState.SECURE in core.supported_security_states
    assert core.get_security_state() is Target.SecurityState.SECURE  # pyocd read DSCSR.CDS via MEM-AP
    assert (t.read32(0xE000_ED44) >> 4) & 0xF == 1  # ID_PFR1.Security
    assert t.read32(0xE000_EE08) & (1 << 16)  # DSCSR.CDS: the core is Secure
    t.write32(0xE000_EE08, (1 << 17) | (1 << 16) | 0x3)  # CDSKEY, CDS, SBRSEL, SBRSELEN
    assert t.read32(0xE000_EE08) & 0x3 == 0x3


def test_wire_accounting_of_a_block_read(session: Session) -> None:
    t = session.target
    w = _wire(session)
    t.read32(SRAM)  # CSW now cached for 32-bit accesses
    before = w.snapshot()
    t.read_memory_block32(SRAM + 0x400, 256)  # one 1 KiB page: TAR write + one block of 256 words
    d = w.snapshot() - before
    assert (d.transfers, d.blocks) == (1 + 256, 1)
    assert d.bytes == (1 + 4) + (1 + 4 * 256)
    assert d.packets == 1 + 257  # the TAR write; 256 posted reads and RDBUFF
    per_packet = wire.PACKET_BITS + wire.IDLE_CYCLES
    assert per_packet == 48 and d.swd_bits == 48 * d.packets
    assert w.swclk_hz == 1_000_000  # pyocd's default frequency, set through set_clock
    assert d.seconds(4_000_000) == pytest.approx(d.swd_bits / 4e6)


def test_a_locked_link_drop_is_probe_disconnected(session: Session) -> None:
    probe = session.probe
    assert isinstance(probe, SimProbe) and probe.board is not None
    probe.board.link_down = True
    with pytest.raises(exceptions.ProbeDisconnected):
        session.target.read32(SRAM)


def test_dp_banks_and_banked_data_registers(session: Session) -> None:
    probe = session.probe
    probe.write_dp(pyocd_dap.DP_SELECT, 2)  # DPBANKSEL 2: TARGETID
    assert probe.read_dp(pyocd_dap.DP_CTRL_STAT) == dap.TARGETID_VALUE
    probe.write_dp(pyocd_dap.DP_SELECT, 0)
    assert probe.read_dp(pyocd_dap.DP_CTRL_STAT) & dap.CDBGPWRUPACK
    session.target.write_memory_block32(SRAM + 0x10, [0xA0, 0xA1, 0xA2, 0xA3])
    probe.write_ap(pyocd_ap.MEM_AP_CSW, dap.CSW_RESET)
    probe.write_ap(pyocd_ap.MEM_AP_TAR, SRAM + 0x18)
    probe.write_dp(pyocd_dap.DP_SELECT, 0x10)  # APBANKSEL 1: BD0-BD3 at A[3:2]
    assert [probe.read_ap(0x0), probe.read_ap(0xC)] == [0xA0, 0xA3]
    probe.write_dp(pyocd_dap.DP_SELECT, 0)
    assert probe.read_ap(pyocd_ap.MEM_AP_TAR) == SRAM + 0x18  # no increment through BDn


def test_an_ap_access_without_debug_power_faults(session: Session) -> None:
    probe = session.probe
    probe.write_dp(pyocd_dap.DP_CTRL_STAT, 0)
    with pytest.raises(exceptions.TransferFaultError):
        probe.read_ap(pyocd_ap.MEM_AP_CSW)
    probe.write_dp(pyocd_dap.DP_CTRL_STAT, dap.CDBGPWRUPREQ | dap.CSYSPWRUPREQ)
    assert probe.read_ap(pyocd_ap.MEM_AP_CSW) & dap.CSW_DEVICEEN


def test_the_probe_serves_uart0_as_a_pyserial_url_without_stale_bytes(session: Session) -> None:
    """A fresh part's ROM refused to boot at power-on and said so on UART0 before anyone listened;
    the port opened later hears only answers to what it sends (here BOOT_FAIL, NO_ROTPK)."""
    import serial

    probe = session.probe
    assert isinstance(probe, SimProbe)
    url = probe.uart_url
    assert url.startswith("socket://127.0.0.1:") and probe.uart_url == url
    port = serial.serial_for_url(url, timeout=0.3)
    try:
        assert port.read(64) == b""
        port.write(protocol.encode(protocol.Command.UID))
        reply = port.read(len(protocol.boot_fail_frame(protocol.BootFailReason.NO_ROTPK)))
        assert reply == protocol.boot_fail_frame(protocol.BootFailReason.NO_ROTPK)
    finally:
        port.close()
