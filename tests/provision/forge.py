"""Forged service answers for the forgery tests: what a compromised service or a man in the
middle with a TLS foothold could send. Each replaces one ``ServiceClient`` method."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nusec.provision.client import CertAnswer, ChainAnswer, SecureBootAnswer, ServiceClient
from nusec.provision.ecdh import ServerHalf
from pki.ca import Issuer, issue_board_certificate
from pki.ca.profiles import board_subject
from tests.service.conftest import ICA_LABEL, Pki


def _pem(c: x509.Certificate) -> str:
    return c.public_bytes(serialization.Encoding.PEM).decode()


def look_alike_root_pem() -> str:
    """A self-signed RootCA with the test RootCA's name and a key of its own."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NuSec Test Root")])
    root = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return _pem(root)


def forged_chain(self: ServiceClient) -> ChainAnswer:
    """A look-alike RootCA (same name as the real one), with the real ICA."""
    real = self._request("GET", "/ca/chain").json()
    return ChainAnswer(look_alike_root_pem(), str(real["ica_pem"]))


def certify_for_other_uid(pki: Pki) -> Callable[..., CertAnswer]:
    """A real ICA-issued certificate, valid in every way, for the same key but another board."""

    def certify(self: ServiceClient, uid: bytes, csr_pem: str) -> CertAnswer:
        req = x509.load_pem_x509_csr(csr_pem.encode())
        other = bytes(b ^ 0xFF for b in uid)
        ica_cert = x509.load_pem_x509_certificate(pki.ica_pem.read_bytes())
        with pki.token.open_backend() as backend:
            cert = issue_board_certificate(Issuer(backend, ICA_LABEL, ica_cert), other, req.public_key())  # type: ignore[arg-type]
        assert cert.subject == board_subject(other)
        return CertAnswer(_pem(cert), format(cert.serial_number, "x"))

    return certify


def other_secure_boot_key(self: ServiceClient, uid: bytes) -> SecureBootAnswer:
    """A secure-boot key the service does not sign with (e.g. an attacker's)."""
    real = self._post_json(uid, "secure-boot-key", f"/boards/{uid.hex().upper()}/secure-boot-key", {})
    assert "public_xy_hex" in real  # the service made its key; we answer with another one
    key = ec.generate_private_key(ec.SECP256R1())
    xy = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SecureBootAnswer(xy, pem.decode(), False)


def tampered_ecdh(real: Callable[..., ServerHalf]) -> Callable[..., ServerHalf]:
    """The service's half with its ephemeral key swapped for the attacker's (signature kept)."""

    def begin(self: ServiceClient, uid: bytes, half: Any, *, idempotency_key: str) -> ServerHalf:
        srv = real(self, uid, half, idempotency_key=idempotency_key)
        mitm = ec.generate_private_key(ec.SECP256R1()).public_key()
        point = mitm.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return ServerHalf(srv.session_id, point, srv.srv_sig, srv.kc_server)

    return begin
