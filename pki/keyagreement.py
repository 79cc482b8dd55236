"""The authenticated ECDH exchange's labels and derivations (docs/key-agreement.md), in one place.

The OEM service (``pki.service``) and the desktop relay (``nusec.provision.ecdh``) both import
this module, so the bytes each side signs, hashes and encrypts cannot drift apart. It holds no
keys and does no I/O: every secret operation (ECDH, AES with ``AES_NuLink3``) stays in the HSM or
on the board; this module only says which block goes in.
"""

from __future__ import annotations

import hashlib

BOARD_PREFIX = b"NuSec-ECDH-board-v1"
SERVER_PREFIX = b"NuSec-ECDH-server-v1"
KC_SERVER_PREFIX = b"NuSec-KC-server"
KC_BOARD_PREFIX = b"NuSec-KC-board"
#: key confirmation values are one AES block
KC_LEN = 16


def board_message(uid: bytes, board_eph: bytes) -> bytes:
    """What the board's identity key signs: its ephemeral point, bound to its UID."""
    return BOARD_PREFIX + uid + board_eph


def board_digest(uid: bytes, board_eph: bytes) -> bytes:
    return hashlib.sha256(board_message(uid, board_eph)).digest()


def server_message(uid: bytes, board_eph: bytes, srv_eph: bytes) -> bytes:
    """What the board's secure-boot key signs (in the HSM): both points, bound to the UID."""
    return SERVER_PREFIX + uid + board_eph + srv_eph


def server_digest(uid: bytes, board_eph: bytes, srv_eph: bytes) -> bytes:
    return hashlib.sha256(server_message(uid, board_eph, srv_eph)).digest()


def transcript(uid: bytes, board_eph: bytes, srv_eph: bytes) -> bytes:
    """T = SHA-256(uid || board_eph || srv_eph), the exchange both confirmations cover."""
    return hashlib.sha256(uid + board_eph + srv_eph).digest()


def kc_server_block(transcript_hash: bytes) -> bytes:
    """The block AES_NuLink3 encrypts to give ``kc_server`` (the service proves it holds the key)."""
    return hashlib.sha256(KC_SERVER_PREFIX + transcript_hash).digest()[:KC_LEN]


def kc_board_block(transcript_hash: bytes) -> bytes:
    """The block AES_NuLink3 encrypts to give ``kc_board`` (the board proves it holds the key)."""
    return hashlib.sha256(KC_BOARD_PREFIX + transcript_hash).digest()[:KC_LEN]
