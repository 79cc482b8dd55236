"""The board's certificate signing request: the desktop builds the CertificationRequestInfo, the
board signs it with its KeyStore identity key, the desktop assembles and checks the CSR.

The CertificationRequestInfo comes from ``pki.ca.csr.board_csr_info`` (asn1crypto, subject from
the PKI's board profile), so the CSR carries the UID exactly as the service's CSR policy expects.
The board returns a raw ``r‖s`` signature; X.509 wants a DER ECDSA-Sig-Value.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nucore import NativeError
from nucore.p256 import signature_to_der
from nusec.provision.errors import VerificationError
from pki.ca.csr import assemble_csr, board_csr_info, check_board_csr
from pki.ecpoint import point_of
from pki.errors import PkiError

RAW_SIG_LEN = 64


def public_key_from_point(point: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from 65-byte SEC1 (04‖X‖Y) or 64-byte X‖Y; ``VerificationError`` if off-curve."""
    if len(point) == 64:
        point = b"\x04" + point
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise VerificationError("public key is not a valid P-256 point") from None


def raw_to_der_signature(raw: bytes) -> bytes:
    """DER ECDSA-Sig-Value from a raw 64-byte ``r‖s``."""
    try:
        return signature_to_der(raw)
    except NativeError:
        raise VerificationError(
            f"board signature must be {RAW_SIG_LEN} bytes (r||s), got {len(raw)}"
        ) from None


def build_info(uid: bytes, auth_pub: ec.EllipticCurvePublicKey) -> bytes:
    """DER CertificationRequestInfo for this board's UID and identity key (what the board signs)."""
    return board_csr_info(uid, auth_pub)


def assemble_and_check(
    uid: bytes, auth_pub: ec.EllipticCurvePublicKey, info_der: bytes, raw_sig: bytes
) -> x509.CertificateSigningRequest:
    """Join info and the board's signature into a CSR and check it before it leaves the desktop:
    the proof-of-possession signature verifies with AUTH_PUB, the key is AUTH_PUB, the subject UID
    is this board's (the service's own CSR policy, run locally)."""
    der = assemble_csr(info_der, raw_to_der_signature(raw_sig))
    try:
        req = x509.load_der_x509_csr(der)
    except ValueError:
        raise VerificationError("assembled CSR does not parse") from None
    if not req.is_signature_valid:
        raise VerificationError(
            "board's signature over the CertificationRequestInfo does not verify with AUTH_PUB"
        )
    if point_of(_ec_key(req.public_key())) != point_of(auth_pub):
        raise VerificationError("CSR public key is not the board's AUTH_PUB")
    try:
        check_board_csr(req, uid)
    except PkiError as exc:
        raise VerificationError(f"CSR fails the board CSR policy: {exc}") from None
    return req


def sign_and_assemble(
    uid: bytes,
    auth_pub: ec.EllipticCurvePublicKey,
    board_sign: Callable[[bytes], bytes],
) -> tuple[bytes, x509.CertificateSigningRequest]:
    """Build the info, have the board sign it (``board_sign(info) -> r‖s``), assemble and check."""
    info = build_info(uid, auth_pub)
    req = assemble_and_check(uid, auth_pub, info, board_sign(info))
    return info, req


def _ec_key(key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VerificationError("key is not EC P-256")
    return key


def csr_pem(req: x509.CertificateSigningRequest) -> str:
    return req.public_bytes(serialization.Encoding.PEM).decode()


__all__ = [
    "assemble_and_check",
    "build_info",
    "csr_pem",
    "point_of",
    "public_key_from_point",
    "raw_to_der_signature",
    "sign_and_assemble",
]
