"""Fixtures for the simulator tests (shared by tests/sim/test_sim_*.py): a private simulator
directory per test, exported as NUSEC_SIM_DIR so subprocesses (pyocd commander/gdbserver) see it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sim_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "sim"
    monkeypatch.setenv("NUSEC_SIM_DIR", str(d))
    monkeypatch.delenv("NUSEC_SIM_FAULTS", raising=False)
    monkeypatch.setenv("NUSEC_SIM_FSYNC", "0")
    return d
