"""Provisioning test plumbing: one real OEM service per module (SoftHSM2 token, HTTPS, mutual
TLS, started on 127.0.0.1 by the service's own helper), a fresh simulator directory per test,
and helpers to read a simulated board's non-volatile state from its file (never through the
tool under test).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nuboard import layout
from nusec.provision.client import TlsConfig
from tests.service import conftest as service_conftest
from tests.service.conftest import Pki

# one real OEM service (own SoftHSM2 token, mTLS) per module, exactly as the service tests get it
pki_files = service_conftest.pki_files
service = service_conftest.service

FIRMWARE = Path(__file__).resolve().parents[2] / "nusec" / "board" / "bin" / "firmware_bl2.bin"


@pytest.fixture()
def tls(pki_files: Pki) -> TlsConfig:
    return TlsConfig(
        client_cert=pki_files.operator_cert, client_key=pki_files.operator_key, ca=pki_files.chain_pem
    )


@pytest.fixture()
def sim_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "sim"
    d.mkdir()
    monkeypatch.setenv("NUSEC_SIM_DIR", str(d))
    monkeypatch.delenv("NUSEC_SIM_FAULTS", raising=False)
    monkeypatch.setenv("NUSEC_SIM_FSYNC", "0")
    return d


@dataclass(frozen=True)
class BoardFile:
    """A simulated board's persisted state, read straight from its file."""

    otp: bytes
    otp_locks: bytes
    config: bytes
    flash_pages: dict[str, str]
    ks_otp: list[dict[str, Any] | None]

    @classmethod
    def load(cls, sim_dir: Path, name: str) -> BoardFile:
        obj = json.loads((sim_dir / f"{name}.json").read_text())
        return cls(
            bytes.fromhex(obj["otp"]),
            bytes.fromhex(obj["otp_locks"]),
            bytes.fromhex(obj["config"]),
            obj["flash_pages"],
            obj["ks_otp"],
        )

    def rom_root_key(self) -> bytes | None:
        """X||Y from KeyStore OTP slots 0 and 1 (KEY words least-significant first), None if empty."""
        x, y = self.ks_otp[0], self.ks_otp[1]
        if x is None or y is None:
            return None
        return bytes.fromhex(x["data"])[:32][::-1] + bytes.fromhex(y["data"])[:32][::-1]

    def locked_entries(self) -> list[int]:
        return [n for n in range(256) if self.otp_locks[4 * n : 4 * n + 4] != b"\xff" * 4]

    def flash(self, size: int, base: int = layout.APP_BASE) -> bytes:
        """``size`` bytes of flash from ``base`` (default: the application slot NuBL2 verifies)."""
        import base64

        start = base - layout.NUBL2_BASE  # the APROM base: flash page 0
        whole = bytearray(b"\xff" * (start + size))
        for idx, b64 in self.flash_pages.items():
            off = int(idx) * 0x2000
            if off < len(whole):
                page = base64.b64decode(b64)
                whole[off : off + len(page)] = page[: len(whole) - off]
        return bytes(whole[start:])


def faults(sim_dir: Path, board: str, **plan: int) -> None:
    """Arm a one-shot fault for ``board`` (consumed when it fires, like a real power cut)."""
    (sim_dir / f"{board}.faults.json").write_text(json.dumps(plan))


@pytest.fixture()
def otp_programs(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """PROGRAM commands the simulated FMC executed, per OTP data/lock address, over every run of the
    test (counted at the 'silicon', independently of the tool's own program log)."""
    from nusim import fmc, memmap

    counts: dict[int, int] = {}
    real = fmc.Fmc._execute

    def counting(self: fmc.Fmc, cmd: int, addr: int) -> None:
        if cmd in (fmc.CMD_PROGRAM, fmc.CMD_PROGRAM_64) and memmap.OTP_BASE <= addr < memmap.OTP_BASE + 0xC00:
            for a in (addr, addr + 4) if cmd == fmc.CMD_PROGRAM_64 else (addr,):
                counts[a] = counts.get(a, 0) + 1
        real(self, cmd, addr)

    monkeypatch.setattr(fmc.Fmc, "_execute", counting)
    return counts
