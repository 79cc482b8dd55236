"""Issue 6 end to end through pyocd, as the desktop tool drives a board: the KeyGen snippet makes
the identity key in the KeyStore, the debugger burns the SecureBoot key and the signed firmware
through the FMC, a pyocd reset secure-boots it, and the ECDH runs over the board's UART."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pyocd.core.helpers import ConnectHelper
from pyocd.core.target import Target

from nuboard.keyslots import IDENTITY_SLOT
from nusec.board.channel import BoardChannel
from nusec.board.snippet import KeyGenSnippet
from nusec.provision.otp_writer import ISPCTL_APUEN, FmcIsp
from nusim import memmap
from nusim.bootrom import last_boot
from nusim.uart import UartLink
from tests.sim.firmware_board import FIRMWARE, ROTPK_OFFSET, ServicePeer, imgtool_sign, write_key_pem, xy


def isp_program(target: Target, addr: int, data: bytes) -> None:
    """Through the host's own writer: ISP clock, protected-register unlock, ISPGO waits."""
    data += b"\xff" * (-len(data) % 4)
    words = [(addr + i, int.from_bytes(data[i : i + 4], "little")) for i in range(0, len(data), 4)]
    FmcIsp(target).program_many(words, enable=ISPCTL_APUEN)


def test_keygen_snippet_then_signed_firmware_then_ecdh_over_uart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUSEC_SIM_DIR", str(tmp_path / "sim"))
    secure_boot = ec.generate_private_key(ec.SECP256R1())
    image = imgtool_sign(FIRMWARE, tmp_path / "signed.bin", write_key_pem(secure_boot, tmp_path / "sb.pem"))

    with ConnectHelper.session_with_chosen_probe(
        unique_id="sim:e2e", options={"target_override": "cortex_m"}
    ) as session:
        target = session.target
        snippet = KeyGenSnippet(target)
        snippet.load()
        auth_pub = snippet.keygen(
            IDENTITY_SLOT
        )  # identity key into its KS OTP slot, where the firmware looks
        isp_program(target, memmap.OTP_BASE + ROTPK_OFFSET, xy(secure_boot.public_key()))
        isp_program(target, memmap.FLASH_BASE, image)
        target.reset()

        board = session.probe.board
        report = last_boot(board)
        assert report is not None and report.booted
        channel = BoardChannel(UartLink(board))
        uid = channel.uid()
        identity = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + auth_pub)
        peer = ServicePeer(secure_boot, identity, uid)
        answer = peer.answer(channel.ecdh_begin())
        kc_board = channel.ecdh_finish(answer.srv_eph, answer.srv_sig, answer.kc_server)
        assert kc_board == peer.expected_kc_board(answer)
