"""Shared plumbing for the simulator tests: pyocd sessions
on ``sim:<board>``, FMC ISP driven from the debugger, and a CertificationRequestInfo builder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asn1crypto import csr, keys, x509
from pyocd.core.helpers import ConnectHelper
from pyocd.core.session import Session

from nusim import clk, fmc, keystore, memmap, sysctl
from tests.tools import tool

ROOT = Path(__file__).resolve().parents[2]
PYOCD = tool("pyocd")


def sim_env() -> dict[str, str]:
    return dict(os.environ)


@contextmanager
def session(board: str, **options: Any) -> Iterator[Session]:
    opts = {"connect_mode": "halt", **options}
    s = ConnectHelper.session_with_chosen_probe(unique_id=f"sim:{board}", options=opts)
    assert s is not None
    with s:
        yield s


def isp_open(target: Any) -> None:
    """What the part needs before ISP: the ISP clock on and the protected registers unlocked."""
    ctl = memmap.CLK_BASE + clk.FMCCTL
    target.write32(ctl, target.read32(ctl) | clk.FMCCTL_ISP0CKEN)
    for code in sysctl.UNLOCK_SEQUENCE:
        target.write32(memmap.SYS_BASE + sysctl.REGLCTL, code)
    assert target.read32(memmap.SYS_BASE + sysctl.REGLCTL) == 1


def ks_open(target: Any) -> None:
    """KS and CRYPTO clocks on, then KeyStore INIT, waited for (it takes modelled time)."""
    for off, bit in ((clk.KSCTL, clk.KSCTL_KS0CKEN), (clk.CRYPTOCTL, clk.CRYPTOCTL_CRYPTO0CKEN)):
        target.write32(memmap.CLK_BASE + off, target.read32(memmap.CLK_BASE + off) | bit)
    target.write32(memmap.KS_BASE + keystore.CTL, keystore.CTL_INIT | keystore.CTL_START)
    for _ in range(1000):
        if target.read32(memmap.KS_BASE + keystore.STS) & keystore.STS_INITDONE:
            return
    raise AssertionError("KeyStore INIT never finished")


def ks_wait(target: Any) -> int:
    """Poll KS_STS until BUSY clears (operations take modelled time); returns KS_STS."""
    for _ in range(1000):
        sts = int(target.read32(memmap.KS_BASE + keystore.STS))
        if not sts & keystore.STS_BUSY:
            return sts
    raise AssertionError("KeyStore stays BUSY")


def isp_wait(target: Any) -> None:
    """Poll ISPTRG.ISPGO until the command is done (it takes modelled time)."""
    for _ in range(1000):
        if not target.read32(memmap.FMC_BASE + fmc.ISPTRG) & fmc.ISPTRG_ISPGO:
            return
    raise AssertionError("ISPGO stuck")


def isp(target: Any, cmd: int, addr: int, data: int = 0) -> tuple[int, bool]:
    """One FMC ISP command from the debugger: (ISPDAT after it, fail flag)."""
    base = memmap.FMC_BASE
    isp_open(target)
    target.write32(
        base + fmc.ISPCTL, fmc.ISPCTL_ISPEN | fmc.ISPCTL_APUEN | fmc.ISPCTL_CFGUEN | fmc.ISPCTL_ISPFF
    )
    target.write32(base + fmc.ISPCMD, cmd)
    target.write32(base + fmc.ISPADDR, addr)
    target.write32(base + fmc.ISPDAT, data)
    target.write32(base + fmc.ISPTRG, fmc.ISPTRG_ISPGO)
    isp_wait(target)
    failed = bool(target.read32(base + fmc.ISPCTL) & fmc.ISPCTL_ISPFF)
    return target.read32(base + fmc.ISPDAT), failed


def otp_program(target: Any, entry: int, word: int, value: int) -> bool:
    """Program one OTP word; True if the FMC accepted it."""
    _, failed = isp(target, fmc.CMD_PROGRAM, memmap.OTP_BASE + 8 * entry + 4 * word, value)
    return not failed


def otp_read(target: Any, entry: int, word: int) -> int:
    value, failed = isp(target, fmc.CMD_READ, memmap.OTP_BASE + 8 * entry + 4 * word)
    assert not failed
    return value


def cri_for(pub_xy: bytes, cn: str = "NuLink3 test") -> bytes:
    """A CertificationRequestInfo (DER) for the P-256 key X||Y, built with asn1crypto."""
    spki = keys.PublicKeyInfo(
        {
            "algorithm": {"algorithm": "ec", "parameters": ("named", "secp256r1")},
            "public_key": b"\x04" + pub_xy,
        }
    )
    info = csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": x509.Name.build({"common_name": cn, "serial_number": "0123456789ab"}),
            "subject_pk_info": spki,
            "attributes": [],
        }
    )
    return bytes(info.dump())
