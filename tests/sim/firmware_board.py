"""Test plumbing for the reference firmware on a simulated board: sign with imgtool, burn through
the FMC as the debugger would, make the identity key with the KS/CRYPTO engine, and a test peer
that plays the OEM service's side of docs/key-agreement.md with pyca/cryptography."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from nuboard.keyslots import IDENTITY_SLOT
from nucore.p256 import signature_from_der as raw_sig  # the one r||s <-> DER owner
from nucore.p256 import signature_to_der as der_sig
from nusec.board.channel import EcdhOffer
from nusim import fmc, keystore, memmap
from nusim.board import Board
from tests.sim.sim_helpers import isp_open, isp_wait

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "nusec" / "board" / "bin" / "firmware.bin"
IMGTOOL = Path(sys.executable).parent / "imgtool"
SLOT_SIZE = "0x40000"
ROTPK_OFFSET = 17 * 8


def write_key_pem(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def imgtool_sign(
    raw: Path, out: Path, key_pem: Path | None, version: str = "1.0.0", header_size: str = "0x20"
) -> bytes:
    """``imgtool sign`` as the service does (docs/firmware-image.md); no key = hash-only image.
    NuBL2 is signed as SecureBootDemo's FwSign.sh does it: ``header_size="0x400"``."""
    cmd = [str(IMGTOOL), "sign", "--header-size", header_size, "--align", "4", "--version", version]
    cmd += ["--slot-size", SLOT_SIZE, "--pad-header"]
    if key_pem is not None:
        cmd += ["--key", str(key_pem)]
    subprocess.run([*cmd, str(raw), str(out)], check=True, capture_output=True)
    return out.read_bytes()


def xy(pub: ec.EllipticCurvePublicKey) -> bytes:
    nums = pub.public_numbers()
    return nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


def isp(board: Board, cmd: int, addr: int, data: int = 0) -> None:
    """One FMC ISP command through the debugger's bus access; fails the test on ISPFF."""
    base = memmap.FMC_BASE
    if not board.read32(memmap.SYS_BASE + 0x100):
        isp_open(board)
    board.write32(base + fmc.ISPCTL, fmc.ISPCTL_ISPEN | fmc.ISPCTL_APUEN)
    board.write32(base + fmc.ISPCMD, cmd)
    board.write32(base + fmc.ISPADDR, addr)
    board.write32(base + fmc.ISPDAT, data)
    board.write32(base + fmc.ISPTRG, fmc.ISPTRG_ISPGO)
    isp_wait(board)
    assert not board.read32(base + fmc.ISPCTL) & fmc.ISPCTL_ISPFF, f"ISP 0x{cmd:02x} at 0x{addr:08x} failed"


def program(board: Board, addr: int, data: bytes) -> None:
    data += b"\xff" * (-len(data) % 4)
    for i in range(0, len(data), 4):
        word = int.from_bytes(data[i : i + 4], "little")
        if word != 0xFFFF_FFFF:
            isp(board, fmc.CMD_PROGRAM, addr + i, word)


def burn_rotpk(board: Board, pub: ec.EllipticCurvePublicKey) -> None:
    """SecureBoot public key X||Y into OTP entries 17-24."""
    program(board, memmap.OTP_BASE + ROTPK_OFFSET, xy(pub))


def make_identity_key(board: Board) -> ec.EllipticCurvePublicKey:
    """What the KeyGen snippet does: a P-256 key made by the PRNG straight into the identity key's
    KS OTP slot (not readable), its public key by an engine point multiplication."""
    from tests.sim.engine import Engine

    eng = Engine(board)
    slot = eng.prng_to_ks(keystore.MEM_OTP, IDENTITY_SLOT, keystore.OWNER_ECC)
    assert slot == IDENTITY_SLOT
    x, y = eng.public(keystore.MEM_OTP, slot)
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


def aes256_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


@dataclass
class ServiceAnswer:
    srv_eph: bytes
    srv_sig: bytes
    kc_server: bytes
    aes_key: bytes
    transcript: bytes  # T = H(uid || board_eph || srv_eph)


class ServicePeer:
    """The OEM service's half of docs/key-agreement.md, written from the document alone."""

    def __init__(
        self, secure_boot_key: ec.EllipticCurvePrivateKey, identity_pub: ec.EllipticCurvePublicKey, uid: bytes
    ) -> None:
        self.secure_boot_key = secure_boot_key
        self.identity_pub = identity_pub
        self.uid = uid

    def answer(self, offer: EcdhOffer) -> ServiceAnswer:
        """Verify board_sig (raises InvalidSignature), then make the signed reply."""
        self.identity_pub.verify(
            der_sig(offer.board_sig),
            b"NuSec-ECDH-board-v1" + self.uid + offer.board_eph,
            ec.ECDSA(hashes.SHA256()),
        )
        eph = ec.generate_private_key(ec.SECP256R1())
        srv_eph = eph.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        srv_sig = raw_sig(
            self.secure_boot_key.sign(
                b"NuSec-ECDH-server-v1" + self.uid + offer.board_eph + srv_eph, ec.ECDSA(hashes.SHA256())
            )
        )
        board_pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), offer.board_eph)
        z = eph.exchange(ec.ECDH(), board_pub)
        t = hashlib.sha256(self.uid + offer.board_eph + srv_eph).digest()
        kc_server = aes256_ecb(z, hashlib.sha256(b"NuSec-KC-server" + t).digest()[:16])
        return ServiceAnswer(srv_eph, srv_sig, kc_server, z, t)

    @staticmethod
    def expected_kc_board(answer: ServiceAnswer) -> bytes:
        return aes256_ecb(answer.aes_key, hashlib.sha256(b"NuSec-KC-board" + answer.transcript).digest()[:16])
