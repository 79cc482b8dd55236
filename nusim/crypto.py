"""CRYPTO (M55M1 ``CRYPTO_BASE`` 0x4020A000): the ECC, PRNG and AES engines as crypto_reg.h
publishes them, working with KeyStore keys by slot number.

ECC is a point/modular arithmetic engine, not a protocol engine: ``ECC_CTL.ECCOP`` (b10:9) picks a
point multiplication (00), a modular operation (01, ``MODOP`` b12:11: DIV 00, MUL 01, ADD 10,
SUB 11), a point addition (10) or a point doubling (11). Operands are ``ECC_X1/Y1/X2/Y2/A/B/N/K``,
18 words each, least-significant word first. The curve is whatever A, B and N (the prime) say;
ECDSA is built by the caller from these steps (the BSP's ``ECC_GenerateSignature_KS``):

- point multiplication: (X1, Y1) = K x (X1, Y1); K comes from the KeyStore when
  ``ECC_KSCTL.RSRCK`` is set (slot ``NUMK``, memory ``RSSRCK``). With ``ECC_KSCTL.WDST`` the
  result's x goes into a new KeyStore key (memory ``WSDST``, owner ``OWNER``; ``ECC_KSSTS.NUM``
  says which) and X1/Y1 read zero: an ECDH secret is never on the bus.
- DIV: X1 = Y1 / X1 mod N; with ``ECC_CTL.ECDSAS``: X1 = (Y2 + X2 * d) / k mod N, the ECDSA s,
  where k and d come from the KeyStore slots ``ECC_KSXY`` names (``RSRCXY`` set) or from X1/Y1.
- MUL: X1 = X1 * Y1 mod N; ADD: X1 = X1 + Y1 mod N; SUB: X1 = X1 - Y1 mod N.
- point addition: (X1, Y1) = (X1, Y1) + (X2, Y2); doubling: (X1, Y1) = 2 (X1, Y1).

PRNG: ``PRNG_CTL.START`` makes a random key of ``KEYSZ``; with ``PRNG_KSCTL.WDST`` it goes into
the KeyStore (``WSDST``: SRAM, flash or the OTP slot ``NUM``; ``OWNER``; ``TRUST`` = secure key) and
never into ``PRNG_KEY``. With ``ECDSA`` or ``ECDH`` set the key lies in [1, n-1] and must go to KS
SRAM with the seed from the TRNG (``SEEDSRC``), else ``PRNG_KSSTS.KCTLERR``.

AES (non-DMA, one block): ``AES_KSCTL`` selects the key slot (``RSRC``, ``RSSRC``, ``NUM``),
``AES_CTL`` START with ``KEYSZ`` 256 and OPMODE ECB arms it, four words into ``AES_DATIN``, four
out of ``AES_DATOUT``. A word holds its 4 block bytes most-significant first unless
``AES_CTL.INSWAP``/``OUTSWAP`` swap them (then a little-endian ``memcpy`` of the bytes is right).

A KeyStore key's bytes are its KEY[0..7] words in order, least-significant word first (as
``KS_WriteOTP`` takes them): the number is ``ks_value(data)``; an AES key is that number's 32
big-endian bytes (so an ECDH secret x keys AES as the usual big-endian Z).

Every operation takes modelled time (``DURATION`` ticks): ``ECC_STS.BUSY``, ``PRNG_STS.BUSY`` or
``AES_STS.BUSY`` stays set and results appear only when it is done. KeyStore errors set
``ECC_STS.KSERR`` (b17), ``PRNG_STS.KSERR`` or ``AES_STS.KSERR``. ``ECC_STS.DMABUSY`` (b1) is never
set: there is no DMA model.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from nusim.board import Master, WordDevice
from nusim.keystore import MEM_SRAM, OWNER_AES, OWNER_ECC, KsError, make_meta

if TYPE_CHECKING:
    from nusim.board import Board

# Offsets (crypto_reg.h, CRYPTO_T).
INTSTS, PRNG_CTL, PRNG_SEED, PRNG_KEY0, PRNG_STS = 0x004, 0x008, 0x00C, 0x010, 0x030
AES_CTL, AES_STS, AES_DATIN, AES_DATOUT, AES_KEY0 = 0x100, 0x104, 0x108, 0x10C, 0x110
ECC_CTL, ECC_STS = 0x800, 0x804
ECC_X1, ECC_Y1, ECC_X2, ECC_Y2, ECC_A, ECC_B, ECC_N, ECC_K = (
    0x808,
    0x850,
    0x898,
    0x8E0,
    0x928,
    0x970,
    0x9B8,
    0xA00,
)
OPERAND_WORDS = 18
PRNG_KSCTL, PRNG_KSSTS, AES_KSCTL = 0xF00, 0xF04, 0xF10
ECC_KSCTL, ECC_KSSTS, ECC_KSXY = 0xF40, 0xF44, 0xF48
OPERANDS = {
    ECC_X1: "x1",
    ECC_Y1: "y1",
    ECC_X2: "x2",
    ECC_Y2: "y2",
    ECC_A: "a",
    ECC_B: "b",
    ECC_N: "n",
    ECC_K: "k",
}

# INTSTS.
INTSTS_AESIF, INTSTS_AESEIF, INTSTS_PRNGIF, INTSTS_PRNGEIF = 1 << 0, 1 << 1, 1 << 16, 1 << 17
INTSTS_ECCIF, INTSTS_ECCEIF = 1 << 22, 1 << 23
# PRNG.
PRNG_CTL_START, PRNG_CTL_SEEDRLD, PRNG_CTL_KEYSZ_POS, PRNG_CTL_BUSY = 1 << 0, 1 << 1, 2, 1 << 8
PRNG_CTL_SEEDSRC = 1 << 16
PRNG_KEYSZ_256 = 6
PRNG_STS_BUSY, PRNG_STS_KCTLERR, PRNG_STS_KSERR, PRNG_STS_TRNGERR = 1 << 0, 1 << 16, 1 << 17, 1 << 18
PRNG_KSCTL_TRUST, PRNG_KSCTL_ECDH, PRNG_KSCTL_ECDSA, PRNG_KSCTL_WDST = 1 << 16, 1 << 19, 1 << 20, 1 << 21
PRNG_KSCTL_WSDST_POS, PRNG_KSCTL_OWNER_POS = 22, 24
PRNG_KSSTS_KCTLERR = 1 << 16
# AES.
AES_CTL_START, AES_CTL_KEYSZ_POS, AES_CTL_DMAEN, AES_CTL_OPMODE_POS = 1 << 0, 2, 1 << 7, 8
AES_CTL_ENCRYPTO, AES_CTL_OUTSWAP, AES_CTL_INSWAP = 1 << 16, 1 << 22, 1 << 23
AES_KEYSZ_256, AES_MODE_ECB = 2, 0
AES_STS_BUSY, AES_STS_INBUFEMPTY, AES_STS_INBUFFULL = 1 << 0, 1 << 8, 1 << 9
AES_STS_OUTBUFEMPTY, AES_STS_OUTBUFFULL, AES_STS_KSERR = 1 << 16, 1 << 17, 1 << 21
AES_KSCTL_RSRC, AES_KSCTL_RSSRC_POS = 1 << 5, 6
# ECC.
ECC_CTL_START, ECC_CTL_ECDSAS, ECC_CTL_ECDSAR, ECC_CTL_FSEL = 1 << 0, 1 << 4, 1 << 5, 1 << 8
ECC_CTL_ECCOP_POS, ECC_CTL_MODOP_POS, ECC_CTL_CURVEM_POS = 9, 11, 22
ECCOP_POINT_MUL, ECCOP_MODULE, ECCOP_POINT_ADD, ECCOP_POINT_DOUBLE = 0, 1, 2, 3
MODOP_DIV, MODOP_MUL, MODOP_ADD, MODOP_SUB = 0, 1, 2, 3
ECC_STS_BUSY, ECC_STS_DMABUSY, ECC_STS_KSERR = 1 << 0, 1 << 1, 1 << 17
ECC_KSCTL_RSRCK, ECC_KSCTL_RSSRCK_POS, ECC_KSCTL_ECDH, ECC_KSCTL_TRUST = 1 << 5, 6, 1 << 14, 1 << 16
ECC_KSCTL_WDST, ECC_KSCTL_WSDST_POS, ECC_KSCTL_OWNER_POS = 1 << 21, 22, 24
ECC_KSXY_RSRCXY, ECC_KSXY_RSSRCX_POS, ECC_KSXY_NUMY_POS, ECC_KSXY_RSSRCY_POS = 1 << 5, 6, 8, 14
NUM_MASK = 0x1F

#: Modelled duration of each operation in ticks (one tick per peripheral register access).
DURATION = {"point_mul": 200, "point_add": 20, "module": 10, "prng": 30, "aes": 10}

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
Point = tuple[int, int] | None  # None = the point at infinity


def ks_value(data: bytes) -> int:
    """The number a KeyStore key holds: its KEY words are least-significant word first, each word
    little-endian (KS_WriteOTP's "inversed order"), so the bytes are the value little-endian."""
    return int.from_bytes(data[:32], "little")


class CryptoError(Exception):
    """An operation the engine cannot do (e.g. DMA, an unsupported AES mode)."""


# -- short Weierstrass arithmetic over GF(p), any curve y^2 = x^3 + a x + b -------------------
def _inv(x: int, p: int) -> int:
    if x % p == 0:
        raise ZeroDivisionError
    return pow(x, -1, p)


def point_add(p1: Point, p2: Point, a: int, p: int) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % p == 0:
            return None
        lam = (3 * x1 * x1 + a) * _inv(2 * y1, p) % p
    else:
        lam = (y2 - y1) * _inv(x2 - x1, p) % p
    x3 = (lam * lam - x1 - x2) % p
    return x3, (lam * (x1 - x3) - y1) % p


def _jdouble(x: int, y: int, z: int, a: int, p: int) -> tuple[int, int, int]:
    if y == 0 or z == 0:
        return 0, 1, 0
    yy = y * y % p
    s = 4 * x * yy % p
    zz = z * z % p
    m = (3 * x * x + a * zz * zz) % p
    x3 = (m * m - 2 * s) % p
    return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y * z % p


def _jadd(x1: int, y1: int, z1: int, x2: int, y2: int, a: int, p: int) -> tuple[int, int, int]:
    """Jacobian (x1, y1, z1) + affine (x2, y2)."""
    if z1 == 0:
        return x2, y2, 1
    z1z1 = z1 * z1 % p
    u2 = x2 * z1z1 % p
    s2 = y2 * z1 * z1z1 % p
    h = (u2 - x1) % p
    r = (s2 - y1) % p
    if h == 0:
        return _jdouble(x1, y1, z1, a, p) if r == 0 else (0, 1, 0)
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - y1 * hhh) % p, z1 * h % p


def point_mul(k: int, pt: Point, a: int, p: int) -> Point:
    if pt is None or k == 0:
        return None
    x, y, z = 0, 1, 0
    for bit in bin(k)[2:]:
        x, y, z = _jdouble(x, y, z, a, p)
        if bit == "1":
            x, y, z = _jadd(x, y, z, pt[0], pt[1], a, p)
    if z == 0:
        return None
    zi = _inv(z, p)
    zi2 = zi * zi % p
    return x * zi2 % p, y * zi2 * zi % p


class CryptoEngine(WordDevice):
    """The ECC, PRNG and AES engines of the CRYPTO block."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.reset()

    def reset(self) -> None:
        self.ops: dict[str, list[int]] = {name: [0] * OPERAND_WORDS for name in OPERANDS.values()}
        self.intsts = 0
        self.ecc_ctl = self.ecc_sts = self.ecc_ksctl = self.ecc_ksxy = self.ecc_ksnum = 0
        self.prng_ctl = self.prng_sts = self.prng_ksctl = self.prng_ksnum = self.prng_ksdone = 0
        self.prng_key = [0] * 8
        self.aes_ctl = self.aes_sts_err = self.aes_ksctl = 0
        self.aes_armed = False
        self.aes_in: list[int] = []
        self.aes_out: list[int] = []
        self.done_at = 0
        self._pending: list[tuple[str, object]] | None = None  # (what, value) applied when done
        self._busy = ""  # "ecc" / "prng" / "aes" while an operation runs

    # -- time ---------------------------------------------------------------------------------
    def _settle(self) -> None:
        if self._pending is not None and self.board.ticks >= self.done_at:
            for what, value in self._pending:
                if what.startswith("op:"):
                    assert isinstance(value, list)
                    self.ops[what[3:]] = value
                else:
                    setattr(self, what, value)
            self._pending = None
            self._busy = ""

    def _finish(self, engine: str, duration: str, results: list[tuple[str, object]]) -> None:
        self._busy = engine
        self._pending = results
        self.done_at = self.board.ticks + DURATION[duration]

    # -- registers ----------------------------------------------------------------------------
    def read32(self, offset: int, master: Master) -> int:
        self._settle()
        for base, name in OPERANDS.items():
            if base <= offset < base + 4 * OPERAND_WORDS:
                if name == "k":
                    return 0  # write-only (crypto_reg.h: __O ECC_K)
                return self.ops[name][(offset - base) // 4]
        if PRNG_KEY0 <= offset < PRNG_KEY0 + 32:
            return self.prng_key[(offset - PRNG_KEY0) // 4]
        if offset == INTSTS:
            return self.intsts
        if offset == ECC_CTL:
            return self.ecc_ctl
        if offset == ECC_STS:
            return self.ecc_sts | (ECC_STS_BUSY if self._busy == "ecc" else 0)
        if offset == ECC_KSSTS:
            return self.ecc_ksnum
        if offset == PRNG_CTL:
            return self.prng_ctl | (PRNG_CTL_BUSY if self._busy == "prng" else 0)
        if offset == PRNG_STS:
            return self.prng_sts | (PRNG_STS_BUSY if self._busy == "prng" else 0)
        if offset == PRNG_KSSTS:
            return self.prng_ksnum
        if offset == AES_CTL:
            return self.aes_ctl
        if offset == AES_STS:
            return self._aes_sts()
        if offset == AES_DATOUT:
            return self.aes_out.pop(0) if self.aes_out and self._busy != "aes" else 0
        return 0

    def write32(self, offset: int, value: int, master: Master) -> None:
        self._settle()
        for base, name in OPERANDS.items():
            if base <= offset < base + 4 * OPERAND_WORDS:
                self.ops[name][(offset - base) // 4] = value
                return
        if offset == INTSTS:
            self.intsts &= ~value  # write 1 to clear
        elif offset == ECC_CTL:
            self.ecc_ctl = value & ~ECC_CTL_START
            if value & ECC_CTL_START and not self._busy:
                self._ecc(value)
        elif offset == ECC_KSCTL:
            self.ecc_ksctl = value
        elif offset == ECC_KSXY:
            self.ecc_ksxy = value
        elif offset == PRNG_CTL:
            self.prng_ctl = value & ~PRNG_CTL_START
            if value & PRNG_CTL_START and not self._busy:
                self._prng(value)
        elif offset == PRNG_SEED:
            pass  # a software seed: the simulated generator draws from the host's random source
        elif offset == PRNG_KSCTL:
            self.prng_ksctl = value
        elif offset == AES_KSCTL:
            self.aes_ksctl = value
        elif offset == AES_CTL:
            self.aes_ctl = value & ~AES_CTL_START
            if value & AES_CTL_START and not self._busy:
                self.aes_armed, self.aes_in, self.aes_out, self.aes_sts_err = True, [], [], 0
        elif offset == AES_DATIN:
            self._aes_feed(value)

    # -- operands -----------------------------------------------------------------------------
    def _int(self, name: str) -> int:
        return sum(w << (32 * i) for i, w in enumerate(self.ops[name]))

    @staticmethod
    def _words(value: int) -> list[int]:
        return [(value >> (32 * i)) & 0xFFFF_FFFF for i in range(OPERAND_WORDS)]

    def _ks_scalar(self, mem: int, num: int) -> int:
        return ks_value(self.board.keystore.get(mem, num, OWNER_ECC).data)

    # -- ECC ----------------------------------------------------------------------------------
    def _ecc(self, ctl: int) -> None:
        op = (ctl >> ECC_CTL_ECCOP_POS) & 0x3
        try:
            results = self._ecc_compute(ctl, op)
            sts, irq = 0, INTSTS_ECCIF
        except KsError:
            results, sts, irq = [], ECC_STS_KSERR, INTSTS_ECCIF | INTSTS_ECCEIF
        except (CryptoError, ZeroDivisionError):
            results, sts, irq = [], 0, INTSTS_ECCIF | INTSTS_ECCEIF
        self.ecc_sts = 0
        kind = {ECCOP_POINT_MUL: "point_mul", ECCOP_MODULE: "module"}.get(op, "point_add")
        self._finish("ecc", kind, [*results, ("ecc_sts", sts), ("intsts", self.intsts | irq)])

    def _ecc_compute(self, ctl: int, op: int) -> list[tuple[str, object]]:
        n, a = self._int("n"), self._int("a")
        if op == ECCOP_MODULE:
            return [("op:x1", self._words(self._modular(ctl, n)))]
        if n < 3:
            raise CryptoError("no prime modulus in ECC_N")
        pt: Point = (self._int("x1"), self._int("y1"))
        if op == ECCOP_POINT_ADD:
            out = point_add(pt, (self._int("x2"), self._int("y2")), a, n)
        elif op == ECCOP_POINT_DOUBLE:
            out = point_add(pt, pt, a, n)
        else:
            ks = self.ecc_ksctl
            if ks & ECC_KSCTL_RSRCK:
                k = self._ks_scalar((ks >> ECC_KSCTL_RSSRCK_POS) & 0x3, ks & NUM_MASK)
            else:
                k = self._int("k")
            out = point_mul(k, pt, a, n)
            if ks & ECC_KSCTL_WDST:
                x = 0 if out is None else out[0]
                mem = (ks >> ECC_KSCTL_WSDST_POS) & 0x3
                owner = (ks >> ECC_KSCTL_OWNER_POS) & 0x7
                meta = make_meta(dst=mem, owner=owner)
                slot = self.board.keystore.store(meta, x.to_bytes(32, "little"))
                zero = [0] * OPERAND_WORDS
                return [("ecc_ksnum", slot), ("op:x1", zero), ("op:y1", list(zero))]
        x, y = (0, 0) if out is None else out
        return [("op:x1", self._words(x)), ("op:y1", self._words(y))]

    def _modular(self, ctl: int, n: int) -> int:
        if n < 2:
            raise CryptoError("no modulus in ECC_N")
        modop = (ctl >> ECC_CTL_MODOP_POS) & 0x3
        x1, y1 = self._int("x1"), self._int("y1")
        if modop == MODOP_DIV:
            if ctl & ECC_CTL_ECDSAS:
                kxy = self.ecc_ksxy
                k, d = x1, y1
                if kxy & ECC_KSXY_RSRCXY:
                    k = self._ks_scalar((kxy >> ECC_KSXY_RSSRCX_POS) & 0x3, kxy & NUM_MASK)
                    d = self._ks_scalar(
                        (kxy >> ECC_KSXY_RSSRCY_POS) & 0x3, (kxy >> ECC_KSXY_NUMY_POS) & NUM_MASK
                    )
                return (self._int("y2") + self._int("x2") * d) * _inv(k, n) % n
            return y1 * _inv(x1, n) % n
        if modop == MODOP_MUL:
            return x1 * y1 % n
        if modop == MODOP_ADD:
            return (x1 + y1) % n
        return (x1 - y1) % n

    # -- PRNG ---------------------------------------------------------------------------------
    def _prng(self, ctl: int) -> None:
        ks = self.prng_ksctl
        size = (ctl >> PRNG_CTL_KEYSZ_POS) & 0xF
        nbytes = {0: 16, 1: 21, 2: 24, 3: 28, 4: 30, 5: 32, 6: 32}.get(size)
        sts, ksnum, key = 0, self.prng_ksnum & NUM_MASK, [0] * 8
        usage = ks & (PRNG_KSCTL_ECDH | PRNG_KSCTL_ECDSA)
        mem = (ks >> PRNG_KSCTL_WSDST_POS) & 0x3
        if nbytes is None:
            sts = PRNG_STS_KCTLERR
        elif ctl & PRNG_CTL_SEEDSRC and not self.board.clk.enabled("TRNG0"):
            sts = PRNG_STS_TRNGERR  # the seed comes from a TRNG that does not run
        elif ks & PRNG_KSCTL_WDST and usage and (mem != MEM_SRAM or not ctl & PRNG_CTL_SEEDSRC):
            ksnum |= PRNG_KSSTS_KCTLERR  # ECDSA/ECDH keys: TRNG seed, KS SRAM only
        else:
            value = int.from_bytes(os.urandom(nbytes), "big")
            if usage:
                value = 1 + value % (P256_N - 1)
            if ks & PRNG_KSCTL_WDST:
                meta = make_meta(
                    dst=mem,
                    owner=(ks >> PRNG_KSCTL_OWNER_POS) & 0x7,
                    size=size,
                    number=ks & NUM_MASK,
                    secure=bool(ks & PRNG_KSCTL_TRUST),
                )
                try:
                    ksnum = self.board.keystore.store(meta, value.to_bytes(32, "little"))
                except KsError:
                    sts = PRNG_STS_KSERR
            else:
                raw = value.to_bytes(32, "little")
                key = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 32, 4)]
        irq = INTSTS_PRNGIF | (INTSTS_PRNGEIF if sts or ksnum & PRNG_KSSTS_KCTLERR else 0)
        self.prng_sts = 0
        self._finish(
            "prng",
            "prng",
            [("prng_sts", sts), ("prng_ksnum", ksnum), ("prng_key", key), ("intsts", self.intsts | irq)],
        )

    # -- AES ----------------------------------------------------------------------------------
    def _aes_sts(self) -> int:
        sts = self.aes_sts_err
        if self._busy == "aes":
            return sts | AES_STS_BUSY | AES_STS_OUTBUFEMPTY
        sts |= AES_STS_INBUFEMPTY if not self.aes_in else 0
        sts |= AES_STS_INBUFFULL if len(self.aes_in) >= 4 else 0
        sts |= AES_STS_OUTBUFEMPTY if not self.aes_out else 0
        sts |= AES_STS_OUTBUFFULL if len(self.aes_out) >= 4 else 0
        return sts

    def _aes_feed(self, word: int) -> None:
        if not self.aes_armed or self._busy or len(self.aes_in) >= 4:
            return
        self.aes_in.append(word)
        if len(self.aes_in) < 4:
            return
        ctl = self.aes_ctl
        block = b"".join(w.to_bytes(4, "little" if ctl & AES_CTL_INSWAP else "big") for w in self.aes_in)
        self.aes_in, self.aes_armed = [], False
        try:
            out = self._aes_block(ctl, block)
            words = [
                int.from_bytes(out[i : i + 4], "little" if ctl & AES_CTL_OUTSWAP else "big")
                for i in range(0, 16, 4)
            ]
            err, irq = 0, INTSTS_AESIF
        except KsError:
            words, err, irq = [], AES_STS_KSERR, INTSTS_AESIF | INTSTS_AESEIF
        except CryptoError:
            words, err, irq = [], 0, INTSTS_AESIF | INTSTS_AESEIF
        self._finish("aes", "aes", [("aes_out", words), ("aes_sts_err", err), ("intsts", self.intsts | irq)])

    def _aes_block(self, ctl: int, block: bytes) -> bytes:
        if ctl & AES_CTL_DMAEN:
            raise CryptoError("AES DMA is not modelled")
        if (ctl >> AES_CTL_OPMODE_POS) & 0xFF != AES_MODE_ECB or (
            ctl >> AES_CTL_KEYSZ_POS
        ) & 0x3 != AES_KEYSZ_256:
            raise CryptoError("only AES-256-ECB is modelled")
        ks = self.aes_ksctl
        if not ks & AES_KSCTL_RSRC:
            raise KsError("AES keys come only from the KeyStore (AES_KSCTL.RSRC)")
        key = self.board.keystore.get((ks >> AES_KSCTL_RSSRC_POS) & 0x3, ks & NUM_MASK, OWNER_AES)
        if len(key.data) != 32:
            raise KsError("AES-256 needs a 256-bit key")
        cipher = Cipher(algorithms.AES(ks_value(key.data).to_bytes(32, "big")), modes.ECB())  # noqa: S305 -- one block, as the engine does
        ctx = cipher.encryptor() if ctl & AES_CTL_ENCRYPTO else cipher.decryptor()
        return ctx.update(block) + ctx.finalize()
