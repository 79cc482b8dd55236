"""The committed KeyGen snippet, loaded and driven over pyocd on a simulated board."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from nuboard.keyslots import IDENTITY_SLOT, ROM_ROOT_SLOTS
from nusec.board.snippet import (
    HEADER,
    MAGIC,
    PENDING,
    PROTOCOL_VERSION,
    Command,
    KeyGenSnippet,
    SnippetError,
    Status,
)
from nusim import fmc, keystore, memmap
from nusim.board import board_uid
from tests.sim.sim_helpers import cri_for, isp, ks_wait, session


def _pub(xy: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xy)


def _verify(xy: bytes, sig: bytes, msg: bytes) -> None:
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    _pub(xy).verify(der, msg, ec.ECDSA(hashes.SHA256()))


def test_keygen_sign_cri_verifies_with_cryptography(sim_dir: Path) -> None:
    with session("k1") as s:
        snip = KeyGenSnippet(s.target)
        snip.load()
        assert snip.read_uid() == board_uid("k1")
        assert not snip.status().slot_used(IDENTITY_SLOT)
        pub = snip.keygen(IDENTITY_SLOT)
        assert snip.status().slot_used(IDENTITY_SLOT)
        assert snip.public_key(IDENTITY_SLOT) == pub
        cri = cri_for(pub)
        sig = snip.sign_cri(cri)
        _verify(pub, sig, cri)  # raises InvalidSignature if wrong
        sig2 = snip.sign_cri(cri)
        assert sig2 != sig  # fresh nonce each time
        _verify(pub, sig2, cri)


def test_private_key_unreachable_through_any_debugger_path(sim_dir: Path) -> None:
    with session("k2") as s:
        t = s.target
        snip = KeyGenSnippet(t)
        snip.load()
        pub = snip.keygen(IDENTITY_SLOT)
        sig = snip.sign_cri(cri_for(pub))
        assert len(sig) == 64
        # Ask the KeyStore to READ the slot through its registers, as an attacker with SWD would.
        t.write32(memmap.KS_BASE + keystore.METADATA, keystore.make_meta(dst=keystore.MEM_OTP, owner=4))
        t.write32(memmap.KS_BASE + keystore.CTL, keystore.CTL_START | (keystore.OP_READ << 1))
        assert ks_wait(t) & keystore.STS_EIF
        windows = {
            "KS": (memmap.KS_BASE, 0x1000),
            "KS-NS": (memmap.KS_BASE + memmap.NS_ALIAS, 0x1000),
            "CRYPTO": (memmap.CRYPTO_BASE, 0x1000),
            "SRAM": (memmap.SRAM_BASE, memmap.SRAM_SIZE),
            "flash": (memmap.FLASH_BASE, memmap.FLASH_SIZE),
        }
        dumps = {name: bytes(t.read_memory_block8(base, size)) for name, (base, size) in windows.items()}
        # OTP, its lock words and the config area are reachable only through FMC ISP READ.
        isp_area = range(memmap.CONFIG_BASE, memmap.CONFIG_BASE + memmap.CONFIG_SIZE, 4)
        otp_area = range(memmap.OTP_BASE, memmap.OTP_LOCK_BASE + memmap.OTP_LOCK_SIZE, 4)
        dumps["ISP"] = b"".join(
            isp(t, fmc.CMD_READ, a)[0].to_bytes(4, "little") for a in [*isp_area, *otp_area]
        )
        board = s.probe.board
    # The oracle: the key as the simulated silicon holds it (host-side state file, not a bus path).
    state = json.loads((sim_dir / "k2.json").read_text())
    d = bytes.fromhex(state["ks_otp"][IDENTITY_SLOT]["data"])
    assert ec.derive_private_key(int.from_bytes(d, "little"), ec.SECP256R1()).public_key() == _pub(pub)
    forms = [d, d[::-1], b"".join(d[i : i + 4][::-1] for i in range(0, 32, 4))]
    for name, dump in dumps.items():
        for form in forms:
            for half in (form[:16], form[16:]):
                assert half not in dump, f"private key material visible in {name}"
    assert board is not None


@pytest.mark.parametrize("slot", ROM_ROOT_SLOTS)
def test_keygen_never_writes_the_rom_root_key_slots(sim_dir: Path, slot: int) -> None:
    """KS OTP slots 0/1 are the mask ROM's secure-boot root key: the snippet refuses them."""
    with session(f"kr{slot}") as s:
        snip = KeyGenSnippet(s.target)
        snip.load()
        with pytest.raises(SnippetError) as exc:
            snip.keygen(slot)
        assert exc.value.status is Status.BAD_SLOT
        assert not snip.status().slot_used(slot)
        board = s.probe.board
        assert board.nv.ks_otp[slot] is None


def test_second_keygen_into_used_slot_is_refused(sim_dir: Path) -> None:
    with session("k3") as s:
        snip = KeyGenSnippet(s.target)
        snip.load()
        pub = snip.keygen(3)
        with pytest.raises(SnippetError) as exc:
            snip.keygen(3)
        assert exc.value.status is Status.SLOT_USED
        assert snip.public_key(3) == pub  # the first key is untouched
        other = snip.keygen(4)
        assert other != pub


def _raw(
    snip: KeyGenSnippet, magic: int, version: int, cmd: int, req_len: int, payload: bytes
) -> tuple[int, bytes]:
    header = HEADER.pack(magic, version, cmd, PENDING, req_len, 0, 77, 0)
    return snip.call_raw(header + payload)


def test_malformed_mailbox_gets_defined_errors(sim_dir: Path) -> None:
    with session("k4") as s:
        snip = KeyGenSnippet(s.target)
        snip.load()
        slot0 = struct.pack("<I", 0)
        assert _raw(snip, 0xDEADBEEF, 1, Command.STATUS, 0, b"")[0] == Status.BAD_MAGIC
        assert _raw(snip, MAGIC, 9, Command.STATUS, 0, b"")[0] == Status.BAD_VERSION
        assert _raw(snip, MAGIC, PROTOCOL_VERSION, 0x77, 0, b"")[0] == Status.BAD_COMMAND
        assert _raw(snip, MAGIC, PROTOCOL_VERSION, Command.KEYGEN, 0xFFFF_FFF0, slot0)[0] == Status.BAD_LENGTH
        assert _raw(snip, MAGIC, PROTOCOL_VERSION, Command.KEYGEN, 2, slot0)[0] == Status.BAD_LENGTH
        assert _raw(snip, MAGIC, PROTOCOL_VERSION, Command.READ_UID, 4, slot0)[0] == Status.BAD_LENGTH
        bad_slot = struct.pack("<I", 99)
        assert _raw(snip, MAGIC, PROTOCOL_VERSION, Command.KEYGEN, 4, bad_slot)[0] == Status.BAD_SLOT
        assert _raw(snip, MAGIC, PROTOCOL_VERSION, Command.GET_PUBKEY, 4, slot0)[0] == Status.NO_KEY
        pub = snip.keygen(IDENTITY_SLOT)
        # The snippet is not a signing oracle: only a DER SEQUENCE naming its own key is signed.
        for blob in (b"\x30\x03abc", b"not der at all", cri_for(bytes(64 - len(pub)) + pub[::-1])):
            with pytest.raises(SnippetError) as exc:
                snip.sign_cri(blob)
            assert exc.value.status is Status.BAD_CRI
        truncated = cri_for(pub)[:-1]
        with pytest.raises(SnippetError) as exc:
            snip.sign_cri(truncated)
        assert exc.value.status is Status.BAD_CRI
        # Still answering normally afterwards.
        assert snip.public_key(IDENTITY_SLOT) == pub


def test_runaway_snippet_is_stopped_by_the_instruction_budget(sim_dir: Path) -> None:
    with session("k5") as s:
        s.probe.board.instruction_budget = 2_000_000
        spin = bytes([0xFE, 0xE7])  # b .
        snip = KeyGenSnippet(s.target, image=spin, timeout_s=30)
        snip.load()
        with pytest.raises(SnippetError, match="not on its BKPT"):
            snip.call(Command.STATUS)


def test_identity_key_persists_across_power_cycles(sim_dir: Path) -> None:
    with session("k6") as s:
        snip = KeyGenSnippet(s.target)
        snip.load()
        pub = snip.keygen(IDENTITY_SLOT)
    with session("k6") as s:
        snip = KeyGenSnippet(s.target)
        snip.load()  # SRAM content is not trusted across power cycles: load again
        assert snip.status().slot_used(IDENTITY_SLOT)
        assert snip.public_key(IDENTITY_SLOT) == pub
        cri = cri_for(pub)
        _verify(pub, snip.sign_cri(cri), cri)
        with pytest.raises(SnippetError):
            snip.keygen(IDENTITY_SLOT)
