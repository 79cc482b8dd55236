"""Certificate checks the desktop makes before it burns anything derived from a service answer.

Trust comes from the operator's side, never from the answer being checked: the RootCA the tool
trusts is the one in its ``--ca`` file (the same anchor that authenticates the service's TLS),
and once OTP holds RootCA/ICA material, that material is the anchor for everything after.
A forged chain, a certificate for another UID or another key raises ``VerificationError``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nusec.provision.errors import VerificationError
from pki.ca.profiles import uid_from_name

OTP_CERT_MAX = 768


@dataclass(frozen=True)
class Chain:
    """The RootCA and ICA certificates, already checked against the local anchor."""

    root: x509.Certificate
    ica: x509.Certificate

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    @property
    def ica_der(self) -> bytes:
        return self.ica.public_bytes(serialization.Encoding.DER)

    def root_xy(self) -> bytes:
        return xy_of(self.root.public_key())


def xy_of(key: object) -> bytes:
    """X‖Y (64 bytes) of a P-256 public key."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VerificationError("key is not EC P-256")
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]


def load_pem_certs(data: bytes | str) -> list[x509.Certificate]:
    raw = data.encode() if isinstance(data, str) else data
    try:
        return x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise VerificationError("answer does not hold valid PEM certificates") from None


def load_cert(data: bytes | str) -> x509.Certificate:
    raw = data.encode() if isinstance(data, str) else data
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        raise VerificationError("not a valid X.509 certificate") from None


def _issued_by(child: x509.Certificate, parent: x509.Certificate, what: str) -> None:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, Exception) as exc:  # InvalidSignature is not a ValueError
        raise VerificationError(f"{what} is not signed by its issuer ({type(exc).__name__})") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check_chain(anchor_root: x509.Certificate, root_pem: str, ica_pem: str) -> Chain:
    """The service's RootCA must be byte-identical to the local anchor; the ICA a CA signed by it."""
    root = load_cert(root_pem)
    ica = load_cert(ica_pem)
    if root.public_bytes(serialization.Encoding.DER) != anchor_root.public_bytes(serialization.Encoding.DER):
        raise VerificationError("service's RootCA is not the RootCA this tool trusts (--ca): forged chain?")
    _issued_by(ica, root, "ICA certificate")
    if not _is_ca(ica):
        raise VerificationError("ICA certificate is not a CA certificate")
    if len(ica.public_bytes(serialization.Encoding.DER)) > OTP_CERT_MAX:
        raise VerificationError(f"ICA certificate is larger than the {OTP_CERT_MAX}-byte OTP field")
    xy_of(root.public_key())
    return Chain(root, ica)


def check_board_cert(
    chain: Chain, cert_pem: str | bytes, uid: bytes, auth_pub_point: bytes
) -> x509.Certificate:
    """The board certificate must chain to ``chain`` (path validation as a TLS client cert, which
    the board profile is), name THIS uid and carry THIS board's identity key, and fit OTP."""
    cert = load_cert(cert_pem)
    _issued_by(cert, chain.ica, "board certificate")
    now = dt.datetime.now(dt.UTC)
    for c, what in (
        (cert, "board certificate"),
        (chain.ica, "ICA certificate"),
        (chain.root, "RootCA certificate"),
    ):
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            raise VerificationError(f"{what} is not valid now (validity window)")
    if cert.issuer != chain.ica.subject:
        raise VerificationError("board certificate's issuer is not the ICA")
    if _is_ca(cert):
        raise VerificationError("board certificate must not be a CA certificate")
    got_uid = uid_from_name(cert.subject)
    if got_uid != uid:
        shown = got_uid.hex().upper() if got_uid else "none"
        raise VerificationError(f"board certificate is for UID {shown}, not this board {uid.hex().upper()}")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("board certificate key is not EC")
    if xy_of(key) != auth_pub_point[-64:]:
        raise VerificationError("board certificate is not for this board's identity key (AUTH_PUB)")
    if len(cert.public_bytes(serialization.Encoding.DER)) > OTP_CERT_MAX:
        raise VerificationError(f"board certificate is larger than the {OTP_CERT_MAX}-byte OTP field")
    return cert


def der_prefix(raw: bytes) -> bytes | None:
    """The complete DER element at the start of ``raw`` (padding after it ignored), or None when
    ``raw`` does not start with a whole one (e.g. a certificate whose OTP write was cut short).
    The length is read by asn1crypto's parser, not by hand."""
    from asn1crypto import parser

    try:
        _cls, _method, _tag, header, content, _trailer = parser.parse(raw, strict=False)
    except ValueError:
        return None
    return raw[: len(header) + len(content)]


def sha256_der(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def openssl_verify(root: x509.Certificate, ica: x509.Certificate, leaf: x509.Certificate) -> tuple[bool, str]:
    """``openssl verify`` of leaf against root with ica untrusted (an independent second opinion)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, cert in (("root", root), ("ica", ica), ("leaf", leaf)):
            p = Path(tmp) / f"{name}.pem"
            p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            paths.append(str(p))
        res = subprocess.run(
            ["openssl", "verify", "-CAfile", paths[0], "-untrusted", paths[1], paths[2]],
            capture_output=True,
            text=True,
            check=False,
        )
        text = (res.stdout + res.stderr).strip().replace(paths[2] + ": ", "")
        return res.returncode == 0, text.splitlines()[-1] if text else ""
