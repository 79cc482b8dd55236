"""A traced provisioning run (issue 15): every memory access the flow makes goes through pyocd's
MEM-AP code (``pyocd.coresight.ap.MEM_AP``: CSW, TAR, DRW at the probe), as with a CMSIS-DAP
probe, and nothing takes the direct memory interface."""

from __future__ import annotations

import collections
import functools
from pathlib import Path
from typing import Any

import pytest
from pyocd.coresight import ap as pyocd_ap

from nusec.provision import flow
from nusec.provision.client import TlsConfig
from nusim import probe_plugin
from pki.service.server import ServiceHandle
from tests.provision.conftest import FIRMWARE

MEM_AP_PATHS = ("_read_memory", "_write_memory", "_read_block32_page", "_write_block32_page")
DIRECT_PATHS = (
    "_accelerated_read_memory",
    "_accelerated_write_memory",
    "_accelerated_read_memory_block32",
    "_accelerated_write_memory_block32",
    "_accelerated_read_memory_block8",
    "_accelerated_write_memory_block8",
)


def _count_calls(
    mp: pytest.MonkeyPatch, owner: type, names: tuple[str, ...], counts: collections.Counter[str]
) -> None:
    for name in names:
        original = getattr(owner, name)

        @functools.wraps(original)
        def counted(*args: Any, _name: str = name, _orig: Any = original, **kwargs: Any) -> Any:
            counts[_name] += 1
            return _orig(*args, **kwargs)

        mp.setattr(owner, name, counted)


def test_a_provisioning_run_moves_every_byte_through_pyocds_mem_ap(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mem_ap: collections.Counter[str] = collections.Counter()
    direct: collections.Counter[str] = collections.Counter()
    _count_calls(monkeypatch, pyocd_ap.MEM_AP, MEM_AP_PATHS, mem_ap)  # bound at MEM_AP.__init__
    _count_calls(monkeypatch, pyocd_ap.MEM_AP, DIRECT_PATHS, direct)
    _count_calls(monkeypatch, probe_plugin.SimMemoryInterface, ("_read", "_write"), direct)
    probes: list[probe_plugin.SimProbe] = []
    real_open = probe_plugin.SimProbe.open

    def open_and_keep(self: probe_plugin.SimProbe) -> None:
        probes.append(self)
        real_open(self)

    monkeypatch.setattr(probe_plugin.SimProbe, "open", open_and_keep)

    res = flow.provision_board("sim:ma1", service.url, FIRMWARE, tls, tmp_path / "j")
    assert res.ok, res.error

    assert not direct, f"direct memory interface used: {dict(direct)}"
    assert all(mem_ap[name] > 0 for name in MEM_AP_PATHS), dict(mem_ap)
    assert probes and all(p.dap is None for p in probes)  # every session closed its probe
    regs: collections.Counter[str] = collections.Counter()
    for p in probes:
        regs.update(p.wire.registers)
    for key in ("W AP0.CSW", "W AP0.TAR", "R AP0.DRW", "W AP0.DRW", "W DP.SELECT", "R AP0.IDR"):
        assert regs[key] > 0, key
    # pyocd's single accesses are one TAR write and one DRW transfer each; its blocks, one TAR
    # per 1 KiB page: so DRW words outnumber TAR writes, and block pages equal block transfers.
    blocks = mem_ap["_read_block32_page"] + mem_ap["_write_block32_page"]
    assert sum(p.wire.blocks for p in probes) >= blocks
    assert regs["W AP0.TAR"] >= mem_ap["_read_memory"] + mem_ap["_write_memory"] + blocks
    assert res.probe_bytes > 0 and sum(p.wire.bytes for p in probes) > res.probe_bytes
