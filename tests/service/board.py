"""A board as the service sees it, modelled with ``cryptography`` (an independent implementation):
identity key + CSR, and the board's half of docs/key-agreement.md."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from nucore.p256 import signature_from_der as raw_sig  # the one r||s <-> DER owner
from nucore.p256 import signature_to_der as der_sig
from pki.ca import build_board_csr


def aes_block(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


@dataclass
class Board:
    uid: bytes = field(default_factory=lambda: secrets.token_bytes(12))
    identity: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def uid_hex(self) -> str:
        return self.uid.hex()

    def csr_pem(self) -> str:
        return build_board_csr(self.identity, self.uid).public_bytes(serialization.Encoding.PEM).decode()

    def start_ecdh(self) -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
        """(ephemeral private, board_eph point, board_sig raw) for step 1."""
        eph = ec.generate_private_key(ec.SECP256R1())
        point = eph.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        sig = self.identity.sign(b"NuSec-ECDH-board-v1" + self.uid + point, ec.ECDSA(hashes.SHA256()))
        return eph, point, raw_sig(sig)

    def finish_ecdh(
        self,
        eph: ec.EllipticCurvePrivateKey,
        board_eph: bytes,
        srv_eph: bytes,
        srv_sig: bytes,
        sb_pub: ec.EllipticCurvePublicKey,
    ) -> tuple[bytes, bytes, bytes]:
        """Check srv_sig like the board firmware; return (AES key, expected kc_server, kc_board)."""
        sb_pub.verify(
            der_sig(srv_sig),
            b"NuSec-ECDH-server-v1" + self.uid + board_eph + srv_eph,
            ec.ECDSA(hashes.SHA256()),
        )
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), srv_eph)
        key = eph.exchange(ec.ECDH(), peer)  # Z = x-coordinate, used directly as AES-256 key
        transcript = hashlib.sha256(self.uid + board_eph + srv_eph).digest()
        kc_server = aes_block(key, hashlib.sha256(b"NuSec-KC-server" + transcript).digest()[:16])
        kc_board = aes_block(key, hashlib.sha256(b"NuSec-KC-board" + transcript).digest()[:16])
        return key, kc_server, kc_board
