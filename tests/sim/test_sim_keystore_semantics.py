"""KeyStore operations with the scopes of ks.h/ks.c: ERASE acts on one SRAM or OTP key, ERASE_ALL
on all of SRAM or all of flash, LOCK on one OTP slot; an OTP slot can be erased at most
KS_MAX_OTPKEY_ERASE_CNT (3) times; METADATA has no revoke bit."""

from __future__ import annotations

from pathlib import Path

from nusim import keystore as ks
from nusim import memmap
from nusim.board import Board
from tests.sim.sim_helpers import ks_open, ks_wait

KS = memmap.KS_BASE


def _op(b: Board, op: int, meta: int, key: bytes | None = None) -> bool:
    """One KeyStore operation; True when it succeeded (no EIF)."""
    if key is not None:
        for i in range(8):
            b.write32(KS + ks.KEY0 + 4 * i, int.from_bytes(key[4 * i : 4 * i + 4], "little"))
    b.write32(KS + ks.METADATA, meta)
    b.write32(KS + ks.STS, ks.STS_IF | ks.STS_EIF)
    b.write32(KS + ks.CTL, (op << 1) | ks.CTL_START)
    return not ks_wait(b) & ks.STS_EIF


def _otp(n: int) -> int:
    return ks.make_meta(dst=ks.MEM_OTP, owner=ks.OWNER_CPU, number=n, readable=True)


def test_erase_scopes_lock_and_otp_erase_limit(sim_dir: Path) -> None:
    key = bytes(range(32))
    with Board.open("ks1", sim_dir) as b:
        ks_open(b)
        assert _op(b, ks.OP_WRITE, ks.make_meta(dst=ks.MEM_FLASH, owner=ks.OWNER_CPU), key)
        flash_meta = b.read32(KS + ks.METADATA)
        assert not _op(b, ks.OP_ERASE, flash_meta)  # ERASE is for SRAM and OTP keys only
        assert not _op(b, ks.OP_ERASE_ALL, _otp(0))  # ERASE_ALL is for SRAM or flash
        assert _op(b, ks.OP_WRITE, ks.make_meta(dst=ks.MEM_SRAM, owner=ks.OWNER_CPU), key)
        assert _op(b, ks.OP_ERASE_ALL, ks.make_meta(dst=ks.MEM_SRAM, owner=0))
        assert all(k is None for k in b.keystore.sram) and b.nv.ks_flash[0] is not None  # SRAM only
        assert _op(b, ks.OP_ERASE_ALL, ks.make_meta(dst=ks.MEM_FLASH, owner=0))
        assert b.nv.ks_flash[0] is None

        for _ in range(ks.OTP_ERASE_LIMIT):  # an OTP slot can be erased three times ...
            assert _op(b, ks.OP_WRITE, _otp(5), key)
            assert _op(b, ks.OP_ERASE, _otp(5))
        assert _op(b, ks.OP_WRITE, _otp(5), key)
        assert not _op(b, ks.OP_ERASE, _otp(5))  # ... and no more
        assert b.nv.ks_otp[5] is not None

        assert _op(b, ks.OP_WRITE, _otp(6), key)
        assert _op(b, ks.OP_LOCK, _otp(6))  # LOCK is per OTP slot
        assert not _op(b, ks.OP_ERASE, _otp(6))
        assert _op(b, ks.OP_WRITE, _otp(7), key) and _op(b, ks.OP_ERASE, _otp(7))  # other slots unaffected
        assert not _op(b, ks.OP_LOCK, ks.make_meta(dst=ks.MEM_SRAM, owner=0))  # LOCK is OTP-only
    with Board.open("ks1", sim_dir) as b:  # erase counts and locks are in the part, across power cycles
        ks_open(b)
        assert not _op(b, ks.OP_ERASE, _otp(6))
        assert not _op(b, ks.OP_ERASE, _otp(5))


def test_metadata_has_no_revoke_bit(sim_dir: Path) -> None:
    """Bit 3 of METADATA is reserved on the M55M1 (ks_reg.h): it does not revoke anything."""
    assert not hasattr(ks, "META_RVK")
    with Board.open("ks2", sim_dir) as b:
        ks_open(b)
        meta = ks.make_meta(dst=ks.MEM_OTP, owner=ks.OWNER_CPU, number=3, readable=True) | (1 << 3)
        assert _op(b, ks.OP_WRITE, meta, bytes(32))
        assert _op(b, ks.OP_READ, _otp(3))  # still readable: nothing was revoked
        assert _op(b, ks.OP_REVOKE, _otp(3))  # REVOKE is the operation that revokes
        assert not _op(b, ks.OP_READ, _otp(3))
