"""Board model through the debugger: OTP write-once physics, the secure lock, persistence,
fault injection, and the CRYPTO/KeyStore engines the firmware uses (ECDH, AES, verify)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pyocd.core import exceptions

from nusim import clk, crypto, fmc, keystore, memmap
from nusim.board import Board, LinkDown, Master
from tests.sim.engine import Engine, N
from tests.sim.sim_helpers import isp, ks_open, ks_wait, otp_program, otp_read, session


def test_otp_is_write_once_and_locks(sim_dir: Path) -> None:
    with session("o1") as s:
        t = s.target
        assert otp_read(t, 5, 0) == 0xFFFF_FFFF
        assert otp_program(t, 5, 0, 0x1234_5678)
        assert otp_read(t, 5, 0) == 0x1234_5678
        assert not otp_program(t, 5, 0, 0x0000_0000), "rewrite of a programmed OTP word must fail"
        assert otp_read(t, 5, 0) == 0x1234_5678
        # Lock entry 6 while blank: its words refuse programs from then on.
        _, failed = isp(t, fmc.CMD_PROGRAM, memmap.OTP_LOCK_BASE + 4 * 6, 0)
        assert not failed
        assert not otp_program(t, 6, 1, 0xAAAA_AAAA)
        assert otp_read(t, 6, 1) == 0xFFFF_FFFF
        _, failed = isp(t, fmc.CMD_PROGRAM, memmap.OTP_LOCK_BASE + 4 * 6, 0)
        assert failed, "a lock word is write-once too"
        # ISPFF is write-1-to-clear and a good command after a failure succeeds.
        assert otp_program(t, 7, 1, 0x0BAD_F00D)
        # Unknown command and unaligned/unmapped addresses fail the same defined way.
        assert isp(t, 0x7E, 0)[1]
        assert isp(t, fmc.CMD_READ, memmap.OTP_BASE + 2)[1]
        assert isp(t, fmc.CMD_READ, 0x3000_0000)[1]
    with session("o1") as s:  # power cycle: OTP content and locks persisted
        assert otp_read(s.target, 5, 0) == 0x1234_5678
        assert not otp_program(s.target, 6, 1, 0)
        assert otp_read(s.target, 7, 1) == 0x0BAD_F00D


def test_flash_programs_only_clear_bits_and_erase_restores(sim_dir: Path) -> None:
    with session("f1") as s:
        t = s.target
        addr = memmap.FLASH_BASE + 0x4000
        assert not isp(t, fmc.CMD_PROGRAM, addr, 0xF0F0_F0F0)[1]
        assert t.read32(addr) == 0xF0F0_F0F0  # flash is readable on the bus
        assert not isp(t, fmc.CMD_PROGRAM, addr, 0x0FFF_FFFF)[1]
        assert t.read32(addr) == 0x00F0_F0F0
        with pytest.raises(exceptions.TransferFaultError):
            t.write32(addr, 0)  # not writable by bus stores
        assert not isp(t, fmc.CMD_PAGE_ERASE, addr)[1]
        assert t.read32(addr) == 0xFFFF_FFFF
        assert not isp(t, fmc.CMD_PROGRAM, addr + 8, 0x1122_3344)[1]
    with session("f1") as s:
        assert s.target.read32(memmap.FLASH_BASE + 0x4008) == 0x1122_3344


def test_secure_lock_takes_debugger_access_away(sim_dir: Path) -> None:
    with session("l1") as s:
        t = s.target
        t.write32(memmap.SRAM_BASE, 0xC0FFEE)
        scrlock = isp(t, fmc.CMD_READ, memmap.SCRLOCK_ADDR)[0]
        assert scrlock & 0xFF == 0x5A
        assert not isp(t, fmc.CMD_PROGRAM, memmap.ARLOCK_ADDR, 0xFFFF_FF00)[1]
        assert isp(t, fmc.CMD_READ, memmap.ARLOCK_ADDR)[0] == 0xFFFF_FF00  # verify before it bites
        assert t.read32(memmap.SRAM_BASE) == 0xC0FFEE  # config words are latched at reset
        t.reset()
        with pytest.raises(exceptions.TransferFaultError):
            t.read32(memmap.SRAM_BASE)
        with pytest.raises(exceptions.TransferFaultError):
            t.read32(memmap.FMC_BASE)
        t.halt()  # ignored: the core cannot be stopped any more
        assert s.probe.board.state.value != "halted"
    # After a power cycle pyocd still connects (ROM table and ids answer) but memory is gone.
    with session("l1", connect_mode="attach") as s:
        t = s.target
        assert t.read32(0xE000_ED00) == 0x411F_D220
        for addr in (memmap.SRAM_BASE, memmap.FLASH_BASE, memmap.KS_BASE, memmap.FMC_BASE):
            with pytest.raises(exceptions.TransferFaultError):
                t.read32(addr)
        with pytest.raises(exceptions.TransferFaultError):
            t.write32(memmap.FMC_BASE + fmc.ISPCMD, 0x24)  # no way to erase the lock through the FMC


def _write_faults(sim_dir: Path, board: str, **faults: int) -> Path:
    sim_dir.mkdir(parents=True, exist_ok=True)
    path = sim_dir / f"{board}.faults.json"
    path.write_text(json.dumps(faults))
    return path


def test_fault_link_drop_after_n_transfers(sim_dir: Path) -> None:
    with session("x1") as s:
        s.target.write32(memmap.SRAM_BASE, 1)
    _write_faults(sim_dir, "x1", drop_link_after=200)
    with pytest.raises(exceptions.ProbeDisconnected):
        with session("x1") as s:
            for i in range(400):
                s.target.write32(memmap.SRAM_BASE + 4 * (i % 16), i)
    with session("x1") as s:  # the fault fired once; a re-run goes through
        s.target.write32(memmap.SRAM_BASE, 2)
        assert s.target.read32(memmap.SRAM_BASE) == 2


def test_fault_failed_isp_program(sim_dir: Path) -> None:
    _write_faults(sim_dir, "x2", fail_program=2)
    with session("x2") as s:
        assert otp_program(s.target, 40, 0, 0x1111_1111)
        assert not otp_program(s.target, 40, 1, 0x2222_2222)  # injected failure: ISPFF, nothing written
        assert otp_read(s.target, 40, 1) == 0xFFFF_FFFF
        assert otp_program(s.target, 40, 1, 0x2222_2222)


def test_fault_power_loss_mid_otp_write(sim_dir: Path) -> None:
    _write_faults(sim_dir, "x3", power_loss_program=1)
    with session("x3") as s:
        with pytest.raises(exceptions.ProbeDisconnected):
            otp_program(s.target, 50, 0, 0x0000_0000)
        with pytest.raises(exceptions.ProbeDisconnected):
            s.target.read32(memmap.SRAM_BASE)
    with session("x3") as s:
        torn = otp_read(s.target, 50, 0)
        assert torn not in (0xFFFF_FFFF, 0), "a torn write is neither blank nor complete"
        assert not otp_program(s.target, 50, 0, 0)  # and the word can never be fixed: it is not blank


def test_env_fault_plan(sim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUSEC_SIM_FAULTS", json.dumps({"x4": {"fail_program": 1}}))
    with Board.open("x4", sim_dir) as b:
        _, failed = isp(b, fmc.CMD_PROGRAM, memmap.OTP_BASE, 0)
        assert failed
    monkeypatch.setenv("NUSEC_SIM_FAULTS", json.dumps({"x4": {"bogus": 1}}))
    with pytest.raises(ValueError, match="bogus"):
        Board.open("x4", sim_dir)


def test_board_is_exclusive_like_a_usb_probe(sim_dir: Path) -> None:
    with Board.open("e1", sim_dir):
        with pytest.raises(RuntimeError, match="in use"):
            Board.open("e1", sim_dir)
    with pytest.raises(ValueError, match="invalid simulated board name"):
        Board.open("../evil", sim_dir)


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]


class _Cpu:
    """The board as the core sees it (Master.CPU), for the shared wait helpers."""

    def __init__(self, b: Board) -> None:
        self.b = b

    def read32(self, addr: int) -> int:
        return self.b.read32(addr, Master.CPU)

    def write32(self, addr: int, value: int) -> None:
        self.b.write32(addr, value, Master.CPU)


def _aes(eng: Engine, mem: int, num: int, block: bytes) -> tuple[bytes, int]:
    """One AES-256-ECB block, non-DMA, swapped in and out (what snippets/common does)."""
    eng.w(crypto.AES_KSCTL, crypto.AES_KSCTL_RSRC | (mem << crypto.AES_KSCTL_RSSRC_POS) | num)
    eng.w(
        crypto.AES_CTL,
        (crypto.AES_KEYSZ_256 << crypto.AES_CTL_KEYSZ_POS)
        | crypto.AES_CTL_ENCRYPTO
        | crypto.AES_CTL_INSWAP
        | crypto.AES_CTL_OUTSWAP
        | crypto.AES_CTL_START,
    )
    for w in _words(block):
        eng.w(crypto.AES_DATIN, w)
    sts = eng.wait(crypto.AES_STS, crypto.AES_STS_BUSY)
    if sts & crypto.AES_STS_KSERR:
        return b"", sts
    return b"".join(eng.r(crypto.AES_DATOUT).to_bytes(4, "little") for _ in range(4)), sts


def test_ecc_engine_point_and_modular_operations_build_ecdsa_and_ecdh(sim_dir: Path) -> None:
    """The engine as published: PRNG -> KS keys, point multiplication, ECDSA from modular steps
    with k and d from KS (ECC_KSXY), ECDH written back into KS (WDST b21), AES with that key;
    checked against pyca/cryptography."""
    with Board.open("c1", sim_dir) as b:
        eng = Engine(_Cpu(b))
        # Key generation: PRNG -> KS SRAM (ECDSA keys may only go there), public key by point mul.
        d_slot = eng.prng_to_ks(0, 0, keystore.OWNER_ECC, crypto.PRNG_KSCTL_ECDSA)
        x, y = eng.public(0, d_slot)
        pub = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        # An ECDSA key for KS OTP is refused (KCTLERR): TRNG seed and SRAM only.
        eng.w(
            crypto.PRNG_KSCTL,
            crypto.PRNG_KSCTL_WDST | (2 << crypto.PRNG_KSCTL_WSDST_POS) | crypto.PRNG_KSCTL_ECDSA,
        )
        eng.w(
            crypto.PRNG_CTL,
            crypto.PRNG_CTL_SEEDSRC | (6 << crypto.PRNG_CTL_KEYSZ_POS) | crypto.PRNG_CTL_START,
        )
        eng.wait(crypto.PRNG_CTL, crypto.PRNG_CTL_BUSY)
        assert eng.r(crypto.PRNG_KSSTS) & crypto.PRNG_KSSTS_KCTLERR
        # ECDSA: r = (k G).x mod n, s = (e + r d) / k mod n, k a fresh PRNG key in KS SRAM.
        digest = bytes(range(32))
        e = int.from_bytes(digest, "big")
        k_slot = eng.prng_to_ks(0, 0, keystore.OWNER_ECC, crypto.PRNG_KSCTL_ECDSA)
        eng.curve()
        eng.w(crypto.ECC_KSCTL, eng.ks_sel(0, k_slot))
        eng.ecc(crypto.ECCOP_POINT_MUL, extra=crypto.ECC_CTL_ECDSAR)
        eng.w(crypto.ECC_KSCTL, 0)
        r = eng.modop(crypto.MODOP_ADD, N, eng.get(crypto.ECC_X1), 0)
        eng.put(crypto.ECC_N, N)
        eng.w(
            crypto.ECC_KSXY,
            crypto.ECC_KSXY_RSRCXY | k_slot | (d_slot << crypto.ECC_KSXY_NUMY_POS),
        )
        eng.put(crypto.ECC_X2, r)
        eng.put(crypto.ECC_Y2, e)
        eng.ecc(crypto.ECCOP_MODULE, crypto.MODOP_DIV, crypto.ECC_CTL_ECDSAS)
        s_ = eng.get(crypto.ECC_X1)
        pub.verify(utils.encode_dss_signature(r, s_), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        # Operands are least-significant word first: word 0 of X1 is the low 32 bits.
        assert eng.r(crypto.ECC_X1) == s_ & 0xFFFF_FFFF
        # ECDH: x of d x peer goes into KS (owner AES) and never onto the bus.
        peer = ec.generate_private_key(ec.SECP256R1())
        pn = peer.public_key().public_numbers()
        eng.curve()
        eng.put(crypto.ECC_X1, pn.x)
        eng.put(crypto.ECC_Y1, pn.y)
        eng.w(
            crypto.ECC_KSCTL,
            eng.ks_sel(0, d_slot)
            | crypto.ECC_KSCTL_ECDH
            | crypto.ECC_KSCTL_WDST
            | (keystore.OWNER_AES << crypto.ECC_KSCTL_OWNER_POS),
        )
        assert eng.ecc(crypto.ECCOP_POINT_MUL) & crypto.ECC_STS_KSERR == 0
        eng.w(crypto.ECC_KSCTL, 0)
        z_slot = eng.r(crypto.ECC_KSSTS) & crypto.NUM_MASK
        assert eng.get(crypto.ECC_X1) == 0 and eng.get(crypto.ECC_Y1) == 0
        z = peer.exchange(ec.ECDH(), pub)
        block = bytes(range(16))
        out, _ = _aes(eng, 0, z_slot, block)
        enc = Cipher(algorithms.AES(z), modes.ECB()).encryptor()
        assert out == enc.update(block) + enc.finalize()
        # The ECDH secret is not readable from the KeyStore.
        ks = memmap.KS_BASE
        b.write32(ks + keystore.METADATA, keystore.make_meta(dst=0, owner=0, number=z_slot), Master.CPU)
        b.write32(ks + keystore.CTL, keystore.CTL_START | (keystore.OP_READ << 1), Master.CPU)
        assert ks_wait(_Cpu(b)) & keystore.STS_EIF
        assert all(b.read32(ks + keystore.KEY0 + 4 * i) == 0 for i in range(8))
        # Wrong owner: the ECC key cannot key AES; the AES key cannot be a scalar.
        assert _aes(eng, 0, d_slot, block)[1] & crypto.AES_STS_KSERR
        eng.curve()
        eng.w(crypto.ECC_KSCTL, eng.ks_sel(0, z_slot))
        assert eng.ecc(crypto.ECCOP_POINT_MUL) & crypto.ECC_STS_KSERR
        # Point addition and doubling agree: G + G == 2G.
        eng.curve()
        eng.put(crypto.ECC_X2, eng.get(crypto.ECC_X1))
        eng.put(crypto.ECC_Y2, eng.get(crypto.ECC_Y1))
        eng.ecc(crypto.ECCOP_POINT_ADD)
        twice = (eng.get(crypto.ECC_X1), eng.get(crypto.ECC_Y1))
        eng.curve()
        eng.ecc(crypto.ECCOP_POINT_DOUBLE)
        assert (eng.get(crypto.ECC_X1), eng.get(crypto.ECC_Y1)) == twice
    with Board.open("c1", sim_dir) as b:  # SRAM key slots are gone after a power cycle
        eng = Engine(_Cpu(b))
        assert _aes(eng, 0, z_slot, block)[1] & crypto.AES_STS_KSERR


def test_ecc_status_is_busy_until_done_and_inert_without_clock(sim_dir: Path) -> None:
    """A one-read poll of ECC_STS (what the old snippet did) sees BUSY; bit 1 is DMABUSY, never
    a done flag; without CRYPTO0CKEN the engine does nothing."""
    with Board.open("c3", sim_dir) as b:
        eng = Engine(_Cpu(b))
        eng.curve()
        eng.put(crypto.ECC_K, 7)
        eng.w(crypto.ECC_CTL, crypto.ECC_CTL_FSEL | crypto.ECC_CTL_START)
        first = eng.r(crypto.ECC_STS)
        assert first & crypto.ECC_STS_BUSY and not first & crypto.ECC_STS_DMABUSY
        assert eng.wait(crypto.ECC_STS, crypto.ECC_STS_BUSY) == 0
        b.write32(memmap.CLK_BASE + clk.CRYPTOCTL, 0, Master.CPU)
        eng.put(crypto.ECC_X1, 5)
        assert eng.r(crypto.ECC_X1) == 0


def test_readable_keystore_key_round_trips(sim_dir: Path) -> None:
    with Board.open("c2", sim_dir) as b:
        ks = memmap.KS_BASE
        ks_open(_Cpu(b))
        key = bytes(range(100, 132))
        for i, w in enumerate(_words(key)):
            b.write32(ks + keystore.KEY0 + 4 * i, w, Master.CPU)
        b.write32(ks + keystore.METADATA, keystore.make_meta(dst=1, owner=5, readable=True), Master.CPU)
        b.write32(ks + keystore.CTL, keystore.CTL_START | (keystore.OP_WRITE << 1), Master.CPU)
        assert not ks_wait(_Cpu(b)) & keystore.STS_EIF
        assert all(b.read32(ks + keystore.KEY0 + 4 * i, Master.CPU) == 0 for i in range(8))
        number = keystore.meta_number(b.read32(ks + keystore.METADATA, Master.CPU))
    with Board.open("c2", sim_dir) as b:  # flash slots persist
        ks_open(_Cpu(b))
        b.write32(ks + keystore.METADATA, keystore.make_meta(dst=1, owner=5, number=number), Master.CPU)
        b.write32(ks + keystore.CTL, keystore.CTL_START | (keystore.OP_READ << 1), Master.CPU)
        ks_wait(_Cpu(b))
        got = b"".join(
            b.read32(ks + keystore.KEY0 + 4 * i, Master.CPU).to_bytes(4, "little") for i in range(8)
        )
        assert got == key


def test_power_loss_link_down_refuses_board_access(sim_dir: Path) -> None:
    with Board.open("p1", sim_dir) as b:
        b.power_loss()
        with pytest.raises(LinkDown):
            b.read32(memmap.SRAM_BASE)


def test_fault_power_loss_mid_flash_write_keeps_earlier_words(sim_dir: Path) -> None:
    _write_faults(sim_dir, "x5", power_loss_program=3)
    base = memmap.FLASH_BASE + 0x10000
    with session("x5") as s:
        assert not isp(s.target, fmc.CMD_PROGRAM, base, 0x1111_1111)[1]
        assert not isp(s.target, fmc.CMD_PROGRAM, base + 4, 0x2222_2222)[1]
        with pytest.raises(exceptions.ProbeDisconnected):
            isp(s.target, fmc.CMD_PROGRAM, base + 8, 0x0000_0000)
    with session("x5") as s:
        t = s.target
        assert t.read32(base) == 0x1111_1111  # programs before the cut were saved with it
        assert t.read32(base + 4) == 0x2222_2222
        assert t.read32(base + 8) not in (0xFFFF_FFFF, 0)  # torn
        assert not isp(t, fmc.CMD_PAGE_ERASE, base)[1]  # flash, unlike OTP, can be erased and redone
        assert not isp(t, fmc.CMD_PROGRAM, base + 8, 0)[1]
        assert t.read32(base + 8) == 0


def test_instruction_budget_from_env(sim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUSEC_SIM_INSTRUCTION_BUDGET", "1234")
    with Board.open("ib", sim_dir) as b:
        assert b.instruction_budget == 1234
    monkeypatch.setenv("NUSEC_SIM_INSTRUCTION_BUDGET", "lots")
    with pytest.raises(ValueError, match="NUSEC_SIM_INSTRUCTION_BUDGET"):
        Board.open("ib", sim_dir)
