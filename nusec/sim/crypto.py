"""CRYPTO (0x4020A000): the ECC engine (P-256) and one-block AES-256-ECB, both working with
KeyStore keys by slot number, modelled with pyca/cryptography.

The register interface is a simplified one with Nuvoton-like names (documented in
``docs/sim-board.md``): operands are 256-bit values written as their 32-byte big-endian string,
four bytes per register word in memory order (a ``memcpy`` of the string on a little-endian
core). Private keys never enter or leave through registers: they are KS slots.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from nusec.sim.board import Master, WordDevice
from nusec.sim.keystore import OWNER_AES, OWNER_ECC, KsError, meta_owner

if TYPE_CHECKING:
    from nusec.sim.board import Board

AES_CTL, AES_STS, AES_KSCTL, AES_DATIN, AES_DATOUT = 0x100, 0x104, 0x110, 0x120, 0x130
ECC_CTL, ECC_STS = 0x800, 0x804
ECC_X1, ECC_Y1, ECC_X2, ECC_Y2, ECC_K = 0x808, 0x850, 0x898, 0x8E0, 0xA00
ECC_KSCTL, ECC_KSMETA, ECC_KSNUM = 0xF40, 0xF48, 0xF4C
OPERANDS = {ECC_X1: "x1", ECC_Y1: "y1", ECC_X2: "x2", ECC_Y2: "y2", ECC_K: "k"}

CTL_START = 1 << 0
AES_CTL_ENCRYPT = 1 << 16
STS_DONE, STS_KSERR, STS_ERR, STS_VFAIL = 1 << 1, 1 << 2, 1 << 3, 1 << 4
KSCTL_RSRC = 1 << 6
KSCTL_WDST = 1 << 15
ECC_OP_KEYGEN, ECC_OP_PUBKEY, ECC_OP_SIGN, ECC_OP_VERIFY, ECC_OP_ECDH = 1, 2, 3, 4, 5
CURVE = ec.SECP256R1()
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class CryptoError(Exception):
    """Bad operands (not a KS problem): ECC_STS.ERR."""


def _ksctl_key(ksctl: int) -> tuple[int, int]:
    """(memory, slot) of the key an engine uses; RSRC must say 'from KeyStore'."""
    if not ksctl & KSCTL_RSRC:
        raise KsError("private keys come only from the KeyStore (KSCTL.RSRC)")
    return (ksctl >> 7) & 0x3, ksctl & 0x3F


class CryptoEngine(WordDevice):
    """ECC and AES engines of the CRYPTO block."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.reset()

    def reset(self) -> None:
        self.ops: dict[str, bytearray] = {name: bytearray(32) for name in OPERANDS.values()}
        self.ecc_ctl = self.ecc_sts = self.ecc_ksctl = self.ecc_ksmeta = self.ecc_ksnum = 0
        self.aes_ctl = self.aes_sts = self.aes_ksctl = 0
        self.aes_in = bytearray(16)
        self.aes_out = bytearray(16)

    # -- registers ----------------------------------------------------------------------------
    def _operand(self, offset: int) -> tuple[bytearray, int] | None:
        for base, name in OPERANDS.items():
            if base <= offset < base + 32:
                return self.ops[name], offset - base
        if AES_DATIN <= offset < AES_DATIN + 16:
            return self.aes_in, offset - AES_DATIN
        if AES_DATOUT <= offset < AES_DATOUT + 16:
            return self.aes_out, offset - AES_DATOUT
        return None

    def read32(self, offset: int, master: Master) -> int:
        regs = {
            ECC_CTL: self.ecc_ctl,
            ECC_STS: self.ecc_sts,
            ECC_KSCTL: self.ecc_ksctl,
            ECC_KSMETA: self.ecc_ksmeta,
            ECC_KSNUM: self.ecc_ksnum,
            AES_CTL: self.aes_ctl,
            AES_STS: self.aes_sts,
            AES_KSCTL: self.aes_ksctl,
        }
        if offset in regs:
            return regs[offset]
        op = self._operand(offset)
        if op is not None:
            buf, off = op
            return int.from_bytes(buf[off : off + 4], "little")
        return 0

    def write32(self, offset: int, value: int, master: Master) -> None:
        op = self._operand(offset)
        if op is not None:
            buf, off = op
            buf[off : off + 4] = value.to_bytes(4, "little")
        elif offset == ECC_CTL:
            self.ecc_ctl = value & ~CTL_START
            if value & CTL_START:
                self.ecc_sts = self._run(self._ecc, (value >> 8) & 0xF)
        elif offset == ECC_KSCTL:
            self.ecc_ksctl = value
        elif offset == ECC_KSMETA:
            self.ecc_ksmeta = value
        elif offset == AES_CTL:
            self.aes_ctl = value & ~CTL_START
            if value & CTL_START:
                self.aes_sts = self._run(self._aes, value)
        elif offset == AES_KSCTL:
            self.aes_ksctl = value

    @staticmethod
    def _run(fn: Callable[[int], int], arg: int) -> int:
        """Run an engine operation; KeyStore and operand errors become status bits, never raise."""
        try:
            return fn(arg)
        except KsError:
            return STS_DONE | STS_KSERR
        except CryptoError:
            return STS_DONE | STS_ERR

    # -- ECC ----------------------------------------------------------------------------------
    def _int(self, name: str) -> int:
        return int.from_bytes(self.ops[name], "big")

    def _put(self, name: str, value: int) -> None:
        self.ops[name][:] = value.to_bytes(32, "big")

    def _private(self) -> ec.EllipticCurvePrivateKey:
        mem, num = _ksctl_key(self.ecc_ksctl)
        key = self.board.keystore.get(mem, num, OWNER_ECC)
        d = int.from_bytes(key.data[:32], "big")
        if not 0 < d < P256_N:
            raise KsError("KS key is not a P-256 private scalar")
        return ec.derive_private_key(d, CURVE)

    def _peer(self) -> ec.EllipticCurvePublicKey:
        try:
            return ec.EllipticCurvePublicNumbers(self._int("x1"), self._int("y1"), CURVE).public_key()
        except ValueError as exc:
            raise CryptoError("point not on P-256") from exc

    def _put_public(self, pub: ec.EllipticCurvePublicKey) -> None:
        nums = pub.public_numbers()
        self._put("x1", nums.x)
        self._put("y1", nums.y)

    def _ecc(self, op: int) -> int:
        ks = self.board.keystore
        if op == ECC_OP_KEYGEN:
            if meta_owner(self.ecc_ksmeta) != OWNER_ECC:
                raise KsError("a generated ECC key must be owned by ECC")
            priv = ec.generate_private_key(CURVE)
            d = priv.private_numbers().private_value.to_bytes(32, "big")
            self.ecc_ksnum = ks.store(self.ecc_ksmeta, d)
            self._put_public(priv.public_key())
        elif op == ECC_OP_PUBKEY:
            self._put_public(self._private().public_key())
        elif op == ECC_OP_SIGN:
            der = self._private().sign(bytes(self.ops["k"]), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            r, s = utils.decode_dss_signature(der)
            self._put("x2", r)
            self._put("y2", s)
        elif op == ECC_OP_VERIFY:
            r, s = self._int("x2"), self._int("y2")
            if not (0 < r < P256_N and 0 < s < P256_N):
                return STS_DONE | STS_VFAIL
            try:
                self._peer().verify(
                    utils.encode_dss_signature(r, s),
                    bytes(self.ops["k"]),
                    ec.ECDSA(utils.Prehashed(hashes.SHA256())),
                )
            except InvalidSignature:
                return STS_DONE | STS_VFAIL
        elif op == ECC_OP_ECDH:
            shared = self._private().exchange(ec.ECDH(), self._peer())
            if self.ecc_ksctl & KSCTL_WDST:
                self.ecc_ksnum = ks.store(self.ecc_ksmeta, shared)
            else:
                self.ops["x1"][:] = shared
        else:
            raise CryptoError(f"unknown ECC operation {op}")
        return STS_DONE

    # -- AES ----------------------------------------------------------------------------------
    def _aes(self, ctl: int) -> int:
        mem, num = _ksctl_key(self.aes_ksctl)
        key = self.board.keystore.get(mem, num, OWNER_AES)
        if len(key.data) != 32:
            raise KsError("AES-256 needs a 256-bit key")
        cipher = Cipher(algorithms.AES(key.data), modes.ECB())  # noqa: S305 -- one block, as the engine does
        ctx = cipher.encryptor() if ctl & AES_CTL_ENCRYPT else cipher.decryptor()
        self.aes_out[:] = ctx.update(bytes(self.aes_in)) + ctx.finalize()
        return STS_DONE
