"""TLS credentials for running the service: its server certificate and operator/admin client
certificates, issued by the ICA in the HSM (``pki.ca`` profiles), written as PEM files.

Why here: the demo, the tests, the bench and ``nusec pki server-cert``/``operator-cert`` all need
"a service the desktop tool can reach over mTLS" right after a ceremony; this is the one place
that knows which files that takes. The TLS private keys are ordinary PEM files (mode 0600):
Python's ssl module cannot use an HSM key, and a TLS key is replaceable, unlike the CA keys.

Every function checks that none of its output files exists before the HSM signs anything, and
removes what it wrote if a later write fails: never a half-written set, never an overwrite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.ca import Issuer, Role, issue_operator_certificate, issue_server_certificate
from pki.errors import PkiError
from pki.files import write_atomic

#: File name of the CA bundle (ICA then RootCA) written next to every credential.
CA_BUNDLE_NAME = "ca-bundle.pem"
#: Subject CN of the service's TLS server certificate.
SERVER_COMMON_NAME = "nusec-service"


class CredentialsExistError(PkiError):
    """An output file already exists (credentials are never overwritten)."""


@dataclass(frozen=True)
class ClientCredentials:
    """An operator's client certificate and key (PEM files) and the CA bundle to trust the server."""

    cert: Path
    key: Path
    ca_bundle: Path  # ICA + RootCA: verify the server with this
    certificate: x509.Certificate | None = None


@dataclass(frozen=True)
class ServerCredentials:
    """The service's TLS server certificate and key (PEM files) and the CA bundle clients trust."""

    cert: Path
    key: Path
    ca_bundle: Path
    certificate: x509.Certificate


@dataclass(frozen=True)
class ServiceCredentials:
    server_cert: Path
    server_key: Path
    ca_bundle: Path
    operator: ClientCredentials
    admin: ClientCredentials


def write_new(path: Path, data: bytes, mode: int) -> Path:
    """Create ``path`` atomically with ``mode`` from the start, refusing to overwrite."""
    try:
        write_atomic(path, data, mode=mode, overwrite=False)
    except FileExistsError:
        raise CredentialsExistError(f"{path} already exists; refusing to overwrite") from None
    return path


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (the file itself is mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _refuse_existing(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.exists() or path.is_symlink():
            raise CredentialsExistError(f"{path} already exists; refusing to overwrite")


def _refuse_outputs(out_dir: Path, stem: str, bundle: bytes) -> None:
    """Before the HSM signs: STEM.pem/.key must not exist, a present bundle must be the same."""
    _refuse_existing([out_dir / f"{stem}.pem", out_dir / f"{stem}.key"])
    bundle_path = out_dir / CA_BUNDLE_NAME
    if bundle_path.exists() and not (bundle_path.is_file() and bundle_path.read_bytes() == bundle):
        raise CredentialsExistError(f"{bundle_path} exists with other certificates; refusing to overwrite")


def _write_set(out_dir: Path, files: Sequence[tuple[str, bytes, int]], bundle: bytes) -> Path:
    """Write ``files`` (all new) plus the CA bundle (new, or already there with the same bytes)
    into ``out_dir``; on any failure remove what this call created. Returns the bundle path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle_path = out_dir / CA_BUNDLE_NAME
    reuse_bundle = bundle_path.is_file() and bundle_path.read_bytes() == bundle
    if bundle_path.exists() and not reuse_bundle:
        raise CredentialsExistError(f"{bundle_path} exists with other certificates; refusing to overwrite")
    _refuse_existing([out_dir / name for name, _, _ in files])
    written: list[Path] = []
    try:
        for name, data, mode in files:
            written.append(write_new(out_dir / name, data, mode))
        if not reuse_bundle:
            written.append(write_new(bundle_path, bundle, 0o644))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return bundle_path


def _issue_key_and_cert(
    ica: Issuer,
    root_cert: x509.Certificate,
    out_dir: Path,
    stem: str,
    issue: Callable[[ec.EllipticCurvePublicKey], x509.Certificate],
    on_issued: Callable[[x509.Certificate], None] | None,
) -> tuple[Path, Path, Path, x509.Certificate]:
    """Check the outputs are free, make a fresh P-256 key, ``issue`` its certificate, run
    ``on_issued``, then write ``STEM.pem``, ``STEM.key`` (0600) and the CA bundle.
    Returns (cert path, key path, bundle path, certificate)."""
    _refuse_outputs(out_dir, stem, cert_pem(ica.certificate, root_cert))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(key.public_key())
    if on_issued is not None:
        on_issued(cert)
    bundle = _write_set(
        out_dir,
        [(f"{stem}.pem", cert_pem(cert), 0o644), (f"{stem}.key", key_pem(key), 0o600)],
        cert_pem(ica.certificate, root_cert),
    )
    return out_dir / f"{stem}.pem", out_dir / f"{stem}.key", bundle, cert


def issue_server_credentials(
    ica: Issuer,
    root_cert: x509.Certificate,
    out_dir: Path,
    *,
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    dns_names: Sequence[str] = (),
    stem: str = "server",
    common_name: str = SERVER_COMMON_NAME,
    on_issued: Callable[[x509.Certificate], None] | None = None,
) -> ServerCredentials:
    """A fresh P-256 key and a ``service-tls-server`` certificate (SAN: ``ip_addresses`` and
    ``dns_names``) issued by ``ica``: ``STEM.pem``, ``STEM.key`` (0600) and ``ca-bundle.pem``.

    ``on_issued(cert)`` runs after issuance and before any file is written (e.g. to record the
    certificate in the store); if it raises, nothing is written."""
    return ServerCredentials(
        *_issue_key_and_cert(
            ica,
            root_cert,
            out_dir,
            stem,
            lambda public: issue_server_certificate(
                ica, public, common_name=common_name, dns_names=dns_names, ip_addresses=ip_addresses
            ),
            on_issued,
        )
    )


def issue_client_credentials(
    ica: Issuer,
    root_cert: x509.Certificate,
    out_dir: Path,
    *,
    name: str,
    role: Role,
    stem: str,
    organization: str | None = None,
    on_issued: Callable[[x509.Certificate], None] | None = None,
) -> ClientCredentials:
    """A fresh P-256 key and an ``operator-client`` certificate (CN ``name``, OU ``role``) issued
    by ``ica``: ``STEM.pem``, ``STEM.key`` (0600) and ``ca-bundle.pem`` (``on_issued`` as for
    ``issue_server_credentials``)."""
    return ClientCredentials(
        *_issue_key_and_cert(
            ica,
            root_cert,
            out_dir,
            stem,
            lambda public: issue_operator_certificate(
                ica, public, name=name, role=role, organization=organization
            ),
            on_issued,
        )
    )


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
    _refuse_existing(
        [out_dir / f"{s}.{ext}" for s in ("server", "operator", "admin") for ext in ("pem", "key")]
        + [out_dir / CA_BUNDLE_NAME]
    )
    server = issue_server_credentials(ica, root_cert, out_dir, ip_addresses=ip_addresses, dns_names=dns_names)
    operator = issue_client_credentials(
        ica, root_cert, out_dir, name=operator_name, role=Role.OPERATOR, stem="operator"
    )
    admin = issue_client_credentials(ica, root_cert, out_dir, name=admin_name, role=Role.ADMIN, stem="admin")
    return ServiceCredentials(
        server_cert=server.cert,
        server_key=server.key,
        ca_bundle=server.ca_bundle,
        operator=operator,
        admin=admin,
    )
