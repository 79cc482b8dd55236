"""The board state file: ``NUSEC_SIM_FSYNC=0`` drops the fsyncs but never the atomic rename."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nusim import nvstate
from nusim.nvstate import NvState, NvStore


def _saves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[tuple[str, str]]]:
    """Save a state once; report the fsync calls and the renames it made."""
    fsyncs: list[int] = []
    renames: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    def spy_replace(src: str, dst: str) -> None:
        renames.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    st = NvState()
    st.otp[0:4] = b"\x00\x01\x02\x03"
    NvStore(tmp_path, "s1").save(st)
    assert NvStore(tmp_path, "s1").load().otp[0:4] == b"\x00\x01\x02\x03"
    return fsyncs, renames


def test_default_save_is_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUSEC_SIM_FSYNC", raising=False)
    fsyncs, renames = _saves(tmp_path, monkeypatch)
    assert len(fsyncs) == 2  # the temp file, then the directory
    assert len(renames) == 1 and renames[0][1] == str(tmp_path / "s1.json")


def test_fsync_opt_out_keeps_the_atomic_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUSEC_SIM_FSYNC", "0")
    fsyncs, renames = _saves(tmp_path, monkeypatch)
    assert fsyncs == []
    assert len(renames) == 1 and Path(renames[0][0]).parent == tmp_path
    assert renames[0][1] == str(tmp_path / "s1.json")
    assert [p.name for p in tmp_path.iterdir()] == ["s1.json"]  # no temp file left behind


@pytest.mark.parametrize("value", ["1", "yes", ""])
def test_anything_but_zero_stays_durable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUSEC_SIM_FSYNC", value)
    assert nvstate.fsync_enabled()
