"""A traced provisioning run (issue 14, item 7): the simulated board's trace (``board.trace``,
logged by ``nusim.board`` at DEBUG) shows the security attribution of what the debugger and
the core touched: Secure addresses (the debugger's SRAM, FMC; the KeyGen snippet's KS and CRYPTO)
and the non-secure DPM instance at its non-secure alias (IDAU NS), each with the SAU's answer,
the combined one and the verdict. Nothing in the flow enables the SAU, so the combined answer is
Secure everywhere (Armv8-M: SAU off and ALLNS 0). The same trace shows the boot chain the flow
set up: ROM -> NuBL2 (with its protected-register unlock) -> the application."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nusec.provision import flow
from nusec.provision.client import TlsConfig
from pki.service.server import ServiceHandle
from tests.provision.conftest import FIRMWARE


def test_a_provisioning_run_traces_secure_and_non_secure_attribution(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="nusim.board")
    res = flow.provision_board("sim:tr1", service.url, FIRMWARE, tls, tmp_path / "j")
    assert res.ok
    trace = [r.getMessage().split(" ", 1)[1] for r in caplog.records if r.name == "nusim.board"]
    events = [t.split(" ", 1)[1] for t in trace if t.startswith("attribution ")]
    debugger = [("debugger", r) for r in ("SRAM", "SYS", "CLK", "FMC", "APROM", "DPM")]
    for who, region in (*debugger, ("cpu", "KS"), ("cpu", "CRYPTO")):
        assert any(e.startswith(f"{who} Secure access to {region} 0x") and "IDAU S" in e for e in events), (
            region
        )
    dpm_ns = [e for e in events if e.startswith("debugger Secure access to DPM_NS 0x50402650")]
    assert dpm_ns == ["debugger Secure access to DPM_NS 0x50402650: IDAU NS, SAU S -> S, allowed"], events
    assert not any(e.endswith("fault") for e in events)  # nothing the flow does is refused
    # the same run shows the boot chain of the part: the ROM verifies NuBL2 with the root key the flow
    # burned in KS OTP slots 0/1 and starts it; NuBL2 unlocks the protected registers for its ISP reads
    # of SecureBoot_PUB, then hands over to the application at 0x00140000 (VTOR after its 0x400 header)
    kinds = [t.split(" ", 1) for t in trace]
    rom = [i for i, (k, m) in enumerate(kinds) if k == "boot.rom" and m.startswith("NuBL2 verified")]
    assert rom, [m for k, m in kinds if k == "boot.rom"]
    after = kinds[rom[-1] :]
    unlock = next(i for i, (k, _) in enumerate(after) if k == "sys.unlock")
    vtor = [m for k, m in after[unlock:] if k == "boot.vtor"]
    assert vtor and "0x00140400" in vtor[0], vtor
    assert not any(k == "boot.rom" and "application verified" in m for k, m in kinds)  # no direct path
