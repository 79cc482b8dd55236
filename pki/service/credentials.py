"""TLS credentials for running the service: its server certificate and operator/admin client
certificates, issued by the ICA in the HSM (``pki.ca`` profiles), written as PEM files.

Why here: the demo, the tests and the bench all need "a service the desktop tool can reach
over mTLS" right after a ceremony; this is the one place that knows which files that takes.
The TLS private keys are ordinary PEM files (mode 0600): Python's ssl module cannot use an HSM
key, and a TLS key is replaceable, unlike the CA keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.ca import Issuer, Role, issue_operator_certificate, issue_server_certificate


@dataclass(frozen=True)
class ClientCredentials:
    """An operator's client certificate and key (PEM files) and the CA bundle to trust the server."""

    cert: Path
    key: Path
    ca_bundle: Path  # ICA + RootCA: verify the server with this


@dataclass(frozen=True)
class ServiceCredentials:
    server_cert: Path
    server_key: Path
    ca_bundle: Path
    operator: ClientCredentials
    admin: ClientCredentials


def _write_new(path: Path, data: bytes, mode: int) -> Path:
    """Create ``path`` (refusing to overwrite) with ``mode`` from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def issue_service_credentials(
    ica: Issuer,
    root_cert: x509.Certificate,
    out_dir: Path,
    *,
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    dns_names: tuple[str, ...] = (),
    operator_name: str = "operator",
    admin_name: str = "admin",
) -> ServiceCredentials:
    """Issue the server certificate (SAN: ``ip_addresses``/``dns_names``) and one operator and one
    admin client certificate into ``out_dir`` (new files only; existing ones are never overwritten)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = _write_new(out_dir / "ca-bundle.pem", _cert_pem(ica.certificate, root_cert), 0o644)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = issue_server_certificate(
        ica,
        server_key.public_key(),
        common_name="nusec-service",
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )

    def client(name: str, role: Role, stem: str) -> ClientCredentials:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_operator_certificate(ica, key.public_key(), name=name, role=role)
        return ClientCredentials(
            cert=_write_new(out_dir / f"{stem}.pem", _cert_pem(cert), 0o644),
            key=_write_new(out_dir / f"{stem}.key", _key_pem(key), 0o600),
            ca_bundle=bundle,
        )

    return ServiceCredentials(
        server_cert=_write_new(out_dir / "server.pem", _cert_pem(server_cert), 0o644),
        server_key=_write_new(out_dir / "server.key", _key_pem(server_key), 0o600),
        ca_bundle=bundle,
        operator=client(operator_name, Role.OPERATOR, "operator"),
        admin=client(admin_name, Role.ADMIN, "admin"),
    )
