"""TrustZone attribution as the firmware relies on it: the KeyStore and CRYPTO are Secure, so
their non-secure aliases (+0x10000000) read as zero and ignore writes, for the core and the
debugger alike; the secure addresses the board C uses work."""

from __future__ import annotations

from pathlib import Path

from nusim import clk, crypto, keystore, memmap
from nusim.board import Board, Master
from tests.sim.engine import Engine


def test_keystore_and_crypto_are_unreachable_from_the_non_secure_alias(sim_dir: Path) -> None:
    with Board.open("tz1", sim_dir) as b:
        for off, bit in ((clk.KSCTL, clk.KSCTL_KS0CKEN), (clk.CRYPTOCTL, clk.CRYPTOCTL_CRYPTO0CKEN)):
            b.write32(memmap.CLK_BASE + off, bit)
        ks_ns = memmap.KS_BASE + memmap.NS_ALIAS
        for master in (Master.CPU, Master.DEBUGGER):
            b.write32(ks_ns + keystore.CTL, keystore.CTL_INIT | keystore.CTL_START, master)
            assert b.read32(ks_ns + keystore.STS, master) == 0
        assert b.read32(memmap.KS_BASE + keystore.STS) == 0  # the NS write did not start INIT
        eng = Engine(b)  # through the secure addresses everything works
        slot = eng.prng_to_ks(keystore.MEM_SRAM, 0, keystore.OWNER_ECC, crypto.PRNG_KSCTL_ECDSA)
        x, _ = eng.public(keystore.MEM_SRAM, slot)
        assert x != 0
        assert b.read32(memmap.CRYPTO_BASE + memmap.NS_ALIAS + crypto.ECC_X1) == 0
        kinds = [detail for kind, detail in b.trace if kind == "attribution"]
        assert any(d.startswith("KS is Secure") for d in kinds)
        assert any(d.startswith("CRYPTO is Secure") for d in kinds)
