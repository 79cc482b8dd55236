"""Relay of the authenticated ECDH exchange (docs/key-agreement.md) between board and service.

The desktop is an untrusted relay, but it still checks both signatures before passing anything
on: the board's half against the identity key in the certificate it just burned, the service's
half against the secure-boot key in OTP. A forged half stops the exchange before either side
keeps a key. Key confirmation runs both ways: the board checks ``kc_server`` (and refuses to
keep the key otherwise), the service checks ``kc_board``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from nucore.p256 import signature_to_der
from nusec.provision.errors import VerificationError
from pki.keyagreement import KC_LEN, board_digest, server_digest

POINT_LEN = 65
RAW_SIG_LEN = 64


@dataclass(frozen=True)
class BoardHalf:
    board_eph: bytes  # 65-byte SEC1 point
    board_sig: bytes  # raw r||s


@dataclass(frozen=True)
class ServerHalf:
    session_id: str
    srv_eph: bytes
    srv_sig: bytes
    kc_server: bytes


class BoardEcdh(Protocol):
    """The board firmware's side of the exchange (its UART channel)."""

    def ecdh_begin(self) -> BoardHalf: ...

    def ecdh_finish(self, srv_eph: bytes, srv_sig: bytes, kc_server: bytes) -> bytes: ...


class ServiceEcdh(Protocol):
    """The OEM service's side of the exchange (its REST API)."""

    def ecdh_begin(self, uid: bytes, half: BoardHalf, *, idempotency_key: str) -> ServerHalf: ...

    def ecdh_confirm(self, uid: bytes, session_id: str, kc_board: bytes, *, idempotency_key: str) -> bool: ...


def _verify_raw(pub_point: bytes, raw_sig: bytes, digest: bytes, what: str) -> None:
    if len(raw_sig) != RAW_SIG_LEN:
        raise VerificationError(f"{what} must be {RAW_SIG_LEN} bytes (r||s)")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + pub_point[-64:])
    except ValueError:
        raise VerificationError(f"key for {what} is not a valid P-256 point") from None
    try:
        key.verify(signature_to_der(raw_sig), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        raise VerificationError(f"{what} does not verify: forged or relayed from another exchange") from None


def check_board_half(uid: bytes, identity_xy: bytes, half: BoardHalf) -> None:
    if len(half.board_eph) != POINT_LEN or half.board_eph[0] != 4:
        raise VerificationError("board ephemeral key is not a 65-byte uncompressed point")
    _verify_raw(identity_xy, half.board_sig, board_digest(uid, half.board_eph), "board's ECDH signature")


def check_server_half(uid: bytes, secure_boot_xy: bytes, board_eph: bytes, half: ServerHalf) -> None:
    if len(half.srv_eph) != POINT_LEN or half.srv_eph[0] != 4:
        raise VerificationError("service ephemeral key is not a 65-byte uncompressed point")
    if len(half.kc_server) != KC_LEN:
        raise VerificationError(f"kc_server must be {KC_LEN} bytes")
    _verify_raw(
        secure_boot_xy,
        half.srv_sig,
        server_digest(uid, board_eph, half.srv_eph),
        "service's ECDH signature (checked with the secure-boot key in OTP)",
    )


@dataclass(frozen=True)
class EcdhResult:
    session_id: str
    board_eph: bytes
    srv_eph: bytes
    kc_board: bytes
    confirmed: bool


def relay(
    uid: bytes,
    identity_xy: bytes,
    secure_boot_xy: bytes,
    board: BoardEcdh,
    service: ServiceEcdh,
    *,
    idempotency_prefix: str,
) -> EcdhResult:
    """One full exchange: board half -> check -> service -> check -> board (checks kc_server,
    returns kc_board) -> service (checks kc_board). Any failed check raises before the next hop."""
    half = board.ecdh_begin()
    check_board_half(uid, identity_xy, half)
    srv = service.ecdh_begin(uid, half, idempotency_key=f"{idempotency_prefix}-begin")
    check_server_half(uid, secure_boot_xy, half.board_eph, srv)
    kc_board = board.ecdh_finish(srv.srv_eph, srv.srv_sig, srv.kc_server)
    if len(kc_board) != KC_LEN:
        raise VerificationError(f"board's key confirmation must be {KC_LEN} bytes")
    confirmed = service.ecdh_confirm(
        uid, srv.session_id, kc_board, idempotency_key=f"{idempotency_prefix}-confirm"
    )
    if not confirmed:
        raise VerificationError("service refused the board's key confirmation: keys differ")
    return EcdhResult(srv.session_id, half.board_eph, srv.srv_eph, kc_board, confirmed)
