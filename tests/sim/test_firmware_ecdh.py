"""The signed reference firmware boots on a simulated board and runs the authenticated ECDH of
docs/key-agreement.md over its UART with a test peer playing the service (pyca/cryptography)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from nuboard.protocol import Status
from nucore.p256 import signature_from_der as raw_sig
from nusec.board.channel import BoardChannel, BoardError
from nusim import keystore, memmap
from nusim.board import Board, CoreState
from nusim.bootrom import last_boot
from nusim.uart import UartLink, UartServer
from tests.sim.firmware_board import (
    FIRMWARE,
    IMGTOOL,
    ServicePeer,
    burn_rotpk,
    imgtool_sign,
    make_identity_key,
    program,
    write_key_pem,
)
from tests.sim.sim_helpers import ks_wait


@dataclass
class Signed:
    key: ec.EllipticCurvePrivateKey
    key_pem: Path
    image: bytes
    path: Path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    d = tmp_path_factory.mktemp("fw")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = write_key_pem(key, d / "secure-boot.pem")
    image = imgtool_sign(FIRMWARE, d / "firmware.signed.bin", pem)
    return Signed(key, pem, image, d / "firmware.signed.bin")


@dataclass
class Provisioned:
    board: Board
    identity: ec.EllipticCurvePublicKey
    peer: ServicePeer
    channel: BoardChannel


@pytest.fixture
def provisioned(tmp_path: Path, signed: Signed) -> Iterator[Provisioned]:
    board = Board.open("fw1", tmp_path)
    try:
        burn_rotpk(board, signed.key.public_key())
        program(board, memmap.FLASH_BASE, signed.image)
        identity = make_identity_key(board)
        board.reset()
        channel = BoardChannel(UartLink(board, timeout=1.0), timeout=5.0)
        yield Provisioned(board, identity, ServicePeer(signed.key, identity, board.uid), channel)
    finally:
        board.close()


def test_imgtool_verifies_the_image_the_board_boots(signed: Signed) -> None:
    out = subprocess.run(
        [str(IMGTOOL), "verify", "--key", str(signed.key_pem), str(signed.path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_signed_firmware_boots_and_completes_authenticated_ecdh(provisioned: Provisioned) -> None:
    board, ch, peer = provisioned.board, provisioned.channel, provisioned.peer
    report = last_boot(board)
    assert report is not None and report.booted and board.state is CoreState.RUNNING
    info = ch.version()
    assert (info.protocol, info.version, info.name) == (1, (1, 0, 0), "nusec-ref-fw")
    assert ch.uid() == board.uid
    status = ch.status()
    assert (status.session, status.rotpk_present, status.aes_slot) == ("idle", True, None)

    offer = ch.ecdh_begin()
    assert len(offer.board_eph) == 65 and offer.board_eph[0] == 4
    assert ch.status().session == "pending"
    answer = peer.answer(offer)  # verifies board_sig with the identity public key
    kc_board = ch.ecdh_finish(answer.srv_eph, answer.srv_sig, answer.kc_server)
    assert kc_board == peer.expected_kc_board(answer)
    status = ch.status()
    assert status.session == "established" and status.aes_slot is not None

    # AES_NuLink3 is in a KS SRAM slot as an AES key, and it is the key the peer derived.
    key = board.keystore.sram[status.aes_slot]
    assert key is not None and key.data[::-1] == answer.aes_key  # KEY words LS first: Z reversed
    assert keystore.meta_owner(key.metadata) == keystore.OWNER_AES
    # ... and nobody reads it back: a KS READ of the slot fails and the KEY registers stay clear.
    meta = keystore.make_meta(dst=keystore.MEM_SRAM, owner=keystore.OWNER_AES, number=status.aes_slot)
    board.write32(memmap.KS_BASE + keystore.METADATA, meta)
    board.write32(memmap.KS_BASE + keystore.CTL, (keystore.OP_READ << 1) | keystore.CTL_START)
    assert ks_wait(board) & keystore.STS_EIF
    assert board.read_memory(memmap.KS_BASE + keystore.KEY0, 32) == bytes(32)


def test_each_exchange_uses_a_fresh_ephemeral_key(provisioned: Provisioned) -> None:
    first = provisioned.channel.ecdh_begin()
    second = provisioned.channel.ecdh_begin()
    assert first.board_eph != second.board_eph
    with pytest.raises(InvalidSignature):  # the first offer's signature does not cover the second key
        provisioned.peer.answer(type(first)(second.board_eph, first.board_sig))


def test_forged_server_signature_is_refused(provisioned: Provisioned) -> None:
    ch = provisioned.channel
    offer = ch.ecdh_begin()
    forger = ServicePeer(ec.generate_private_key(ec.SECP256R1()), provisioned.identity, provisioned.board.uid)
    answer = forger.answer(offer)
    with pytest.raises(BoardError) as exc:
        ch.ecdh_finish(answer.srv_eph, answer.srv_sig, answer.kc_server)
    assert exc.value.status == Status.ERR_BAD_SIGNATURE
    assert ch.status().session == "idle"  # the ephemeral key is gone: the relay must start over
    with pytest.raises(BoardError) as exc:
        ch.ecdh_finish(answer.srv_eph, answer.srv_sig, answer.kc_server)
    assert exc.value.status == Status.ERR_STATE


def test_wrong_key_confirmation_leaves_no_key(provisioned: Provisioned) -> None:
    ch = provisioned.channel
    answer = provisioned.peer.answer(ch.ecdh_begin())
    bad_kc = bytes([answer.kc_server[0] ^ 1]) + answer.kc_server[1:]
    with pytest.raises(BoardError) as exc:
        ch.ecdh_finish(answer.srv_eph, answer.srv_sig, bad_kc)
    assert exc.value.status == Status.ERR_KEY_CONFIRM
    assert ch.status().aes_slot is None
    assert all(k is None for k in provisioned.board.keystore.sram)  # neither ephemeral nor AES key kept


def test_signed_point_off_the_curve_is_refused(provisioned: Provisioned) -> None:
    ch, peer = provisioned.channel, provisioned.peer
    offer = ch.ecdh_begin()
    answer = peer.answer(offer)
    bad_eph = answer.srv_eph[:-1] + bytes([answer.srv_eph[-1] ^ 1])
    # The service key signs the bad point, so only the curve check can stop it.
    signed_msg = b"NuSec-ECDH-server-v1" + peer.uid + offer.board_eph + bad_eph
    sig = raw_sig(peer.secure_boot_key.sign(signed_msg, ec.ECDSA(hashes.SHA256())))
    with pytest.raises(BoardError) as exc:
        ch.ecdh_finish(bad_eph, sig, answer.kc_server)
    assert exc.value.status == Status.ERR_BAD_POINT


def test_finish_before_begin_is_a_state_error(provisioned: Provisioned) -> None:
    with pytest.raises(BoardError) as exc:
        provisioned.channel.ecdh_finish(b"\x04" + bytes(64), bytes(64), bytes(16))
    assert exc.value.status == Status.ERR_STATE


def test_session_does_not_survive_a_reset(provisioned: Provisioned) -> None:
    ch = provisioned.channel
    answer = provisioned.peer.answer(ch.ecdh_begin())
    provisioned.board.reset()
    with pytest.raises(BoardError) as exc:
        ch.ecdh_finish(answer.srv_eph, answer.srv_sig, answer.kc_server)
    assert exc.value.status == Status.ERR_STATE


def test_begin_without_identity_key_is_refused(tmp_path: Path, signed: Signed) -> None:
    with Board.open("noid", tmp_path) as board:
        burn_rotpk(board, signed.key.public_key())
        program(board, memmap.FLASH_BASE, signed.image)
        board.reset()
        ch = BoardChannel(UartLink(board, timeout=1.0))
        with pytest.raises(BoardError) as exc:
            ch.ecdh_begin()
        assert exc.value.status == Status.ERR_NO_IDENTITY
        assert ch.status().session == "idle"


@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_exchange_over_the_host_uart_transport(provisioned: Provisioned, kind: str) -> None:
    """The board's UART as the host sees it: a pty or TCP socket opened with pyserial."""
    with UartServer(provisioned.board, kind) as server:
        with BoardChannel.open(server.address, timeout=10.0) as ch:
            assert ch.uid() == provisioned.board.uid
            answer = provisioned.peer.answer(ch.ecdh_begin())
            kc_board = ch.ecdh_finish(answer.srv_eph, answer.srv_sig, answer.kc_server)
            assert kc_board == provisioned.peer.expected_kc_board(answer)
