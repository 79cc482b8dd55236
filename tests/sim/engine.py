"""The CRYPTO engine driven from Python the way the board C drives it (snippets/common/
m55m1_crypto.c): for model tests that need the engine without compiled code. Every operation
polls its busy bit, as silicon needs."""

from __future__ import annotations

from typing import Any

from nusim import crypto as c
from nusim import memmap
from tests.sim.sim_helpers import ks_open

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
N = c.P256_N


class Engine:
    """One board's CRYPTO block through ``target.read32``/``write32`` (a Board or a pyocd target)."""

    def __init__(self, target: Any, *, open_keystore: bool = True) -> None:
        self.t = target
        if open_keystore:
            ks_open(target)
            from nusim import clk

            ctl = memmap.CLK_BASE + clk.TRNGCTL
            target.write32(ctl, target.read32(ctl) | clk.TRNGCTL_TRNG0CKEN)

    def w(self, off: int, value: int) -> None:
        self.t.write32(memmap.CRYPTO_BASE + off, value)

    def r(self, off: int) -> int:
        return int(self.t.read32(memmap.CRYPTO_BASE + off))

    def put(self, off: int, value: int) -> None:
        for i in range(c.OPERAND_WORDS):
            self.w(off + 4 * i, (value >> (32 * i)) & 0xFFFF_FFFF)

    def get(self, off: int) -> int:
        return sum(self.r(off + 4 * i) << (32 * i) for i in range(8))

    def wait(self, off: int, busy: int) -> int:
        for _ in range(10_000):
            sts = self.r(off)
            if not sts & busy:
                return sts
        raise AssertionError(f"CRYPTO register 0x{off:03x} stays busy")

    def ecc(self, op: int, modop: int = 0, extra: int = 0) -> int:
        """Run one ECC operation; returns ECC_STS after BUSY cleared."""
        self.w(c.INTSTS, c.INTSTS_ECCIF | c.INTSTS_ECCEIF)
        self.w(
            c.ECC_CTL,
            c.ECC_CTL_FSEL
            | (256 << c.ECC_CTL_CURVEM_POS)
            | (op << c.ECC_CTL_ECCOP_POS)
            | (modop << c.ECC_CTL_MODOP_POS)
            | extra
            | c.ECC_CTL_START,
        )
        return self.wait(c.ECC_STS, c.ECC_STS_BUSY)

    def curve(self) -> None:
        for off, v in (
            (c.ECC_A, A),
            (c.ECC_B, B),
            (c.ECC_N, P),
            (c.ECC_X1, GX),
            (c.ECC_Y1, GY),
            (c.ECC_X2, N),
        ):
            self.put(off, v)
        self.put(c.ECC_K, 0)

    def ks_sel(self, mem: int, num: int) -> int:
        return c.ECC_KSCTL_RSRCK | (mem << c.ECC_KSCTL_RSSRCK_POS) | num

    def prng_to_ks(self, dst: int, num: int, owner: int, usage: int = 0) -> int:
        """PRNG -> KeyStore; returns the slot (asserts the engine reported no error)."""
        self.w(
            c.PRNG_KSCTL,
            c.PRNG_KSCTL_WDST
            | (dst << c.PRNG_KSCTL_WSDST_POS)
            | (owner << c.PRNG_KSCTL_OWNER_POS)
            | c.PRNG_KSCTL_TRUST
            | usage
            | num,
        )
        self.w(c.PRNG_CTL, c.PRNG_CTL_SEEDSRC | (c.PRNG_KEYSZ_256 << c.PRNG_CTL_KEYSZ_POS) | c.PRNG_CTL_START)
        sts = self.wait(c.PRNG_CTL, c.PRNG_CTL_BUSY)
        assert not self.r(c.PRNG_STS) & (c.PRNG_STS_KSERR | c.PRNG_STS_TRNGERR), hex(sts)
        ksts = self.r(c.PRNG_KSSTS)
        assert not ksts & c.PRNG_KSSTS_KCTLERR
        return ksts & c.NUM_MASK

    def public(self, mem: int, num: int) -> tuple[int, int]:
        self.curve()
        self.w(c.ECC_KSCTL, self.ks_sel(mem, num))
        sts = self.ecc(c.ECCOP_POINT_MUL)
        self.w(c.ECC_KSCTL, 0)
        assert not sts & c.ECC_STS_KSERR
        return self.get(c.ECC_X1), self.get(c.ECC_Y1)

    def modop(self, modop: int, mod: int, x: int, y: int, extra: int = 0) -> int:
        self.put(c.ECC_N, mod)
        self.put(c.ECC_X1, x)
        self.put(c.ECC_Y1, y)
        self.ecc(c.ECCOP_MODULE, modop, extra)
        return self.get(c.ECC_X1)
