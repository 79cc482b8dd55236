"""Service test plumbing: a throwaway SoftHSM2 token with RootCA/ICA keys made in it, the TLS and
operator certificates issued by that ICA (pki.ca profiles), and the real service started on
127.0.0.1 in a subprocess. One token and one server per test module (each its own SOFTHSM2_CONF).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.batch import build_batch, load_spec
from pki.ca import Issuer, create_root_certificate, issue_ica_certificate
from pki.hsm import KeyBackend
from pki.hsm.softhsm import SoftHsmDir, SoftHsmToken
from pki.nubl2 import sign_nubl2
from pki.service.config import ServiceConfig
from pki.service.credentials import issue_service_credentials
from pki.service.server import LOG_LEVEL_ENV, ServiceHandle, run_in_background
from tests.service.client import ServiceClient

TOKEN_LABEL = "nusec-svc-test"
ROOT_LABEL = "root-ca"
ICA_LABEL = "ica"
NUBL2_LABEL = "nusec-nubl2"  # pki.service.config.DEFAULT_NUBL2_KEY_LABEL
BATCH_KEK = "otp-batch-kek"
BATCH_SIGNER = "otp-batch-signer"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return path


def _write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


@dataclass(frozen=True)
class Pki:
    """Files and token of one test PKI."""

    dir: Path
    token: SoftHsmToken
    root_pem: Path
    ica_pem: Path
    chain_pem: Path  # ICA + root (the client trust store)
    server_cert: Path
    server_key: Path
    operator_cert: Path
    operator_key: Path
    admin_cert: Path
    admin_key: Path
    rogue_cert: Path  # an operator cert from a CA the service does not trust
    rogue_key: Path
    nubl2_image: Path  # the reference NuBL2 signed with the token's NuBL2 key

    def config(self, **over: object) -> ServiceConfig:
        base = dict(
            hsm_uri=f"pkcs11:token={TOKEN_LABEL};object={ICA_LABEL}?module-path={self.token.module_path}",
            root_cert=self.root_pem,
            ica_cert=self.ica_pem,
            tls_cert=self.server_cert,
            tls_key=self.server_key,
            db_url=f"sqlite:///{self.dir / 'service.db'}",
            host="127.0.0.1",
            port=0,
            max_firmware_bytes=256 * 1024,
            nubl2_image=self.nubl2_image,
        )
        base.update(over)
        return ServiceConfig(**base)  # type: ignore[arg-type]


def make_ca(
    backend: KeyBackend, root_label: str, ica_label: str, name: str, *, ica_backend: KeyBackend | None = None
) -> tuple[x509.Certificate, x509.Certificate]:
    """RootCA and ICA key pairs made in ``backend`` (the ICA in ``ica_backend`` if given: the
    service's token, which must not hold the root key) and their certificates (CN ``NAME Root``
    and ``NAME ICA``), issued by ``pki.ca``."""
    backend.generate_ec_keypair(root_label)
    ica_info = (ica_backend or backend).generate_ec_keypair(ica_label)
    root_cert = create_root_certificate(
        backend, root_label, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Root")])
    )
    ica_cert = issue_ica_certificate(
        Issuer(backend, root_label, root_cert),
        ica_info.public_key,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} ICA")]),
    )
    return root_cert, ica_cert


def make_pki(root: Path) -> Pki:
    """RootCA and ICA keys in a fresh SoftHSM2 token; TLS/operator credentials via
    ``pki.service.credentials`` (the helper the demo uses)."""
    root.mkdir(parents=True, exist_ok=True)
    hsm = SoftHsmDir.create(root / "hsm")
    token = hsm.init_token(TOKEN_LABEL)
    offline = hsm.init_token(TOKEN_LABEL + "-root")  # the root key stays off the service's token
    with token.open_backend() as backend, offline.open_backend() as root_backend:
        root_cert, ica_cert = make_ca(root_backend, ROOT_LABEL, ICA_LABEL, "NuSec Test", ica_backend=backend)
        creds = issue_service_credentials(
            Issuer(backend, ICA_LABEL, ica_cert),
            root_cert,
            root / "tls",
            operator_name="alice",
            admin_name="root-admin",
        )
        nubl2 = _signed_nubl2(backend, root / "nubl2-signed.bin")
    rogue_key, rogue_cert = _rogue_operator()
    return Pki(
        dir=root,
        token=token,
        root_pem=_write_cert(root / "root.pem", root_cert),
        ica_pem=_write_cert(root / "ica.pem", ica_cert),
        chain_pem=creds.ca_bundle,
        server_cert=creds.server_cert,
        server_key=creds.server_key,
        operator_cert=creds.operator.cert,
        operator_key=creds.operator.key,
        admin_cert=creds.admin.cert,
        admin_key=creds.admin.key,
        rogue_cert=_write_cert(root / "rogue.pem", rogue_cert),
        rogue_key=_write_key(root / "rogue.key", rogue_key),
        nubl2_image=nubl2,
    )


NUBL2_BIN = Path(__file__).resolve().parents[2] / "nusec" / "board" / "bin" / "nubl2.bin"


def _signed_nubl2(backend: KeyBackend, out: Path) -> Path:
    """The OEM's NuBL2 key on the service's token (what the nubl2-key ceremony makes) and the
    reference NuBL2 signed with it."""
    info = backend.generate_ec_keypair(NUBL2_LABEL)
    out.write_bytes(
        sign_nubl2(NUBL2_BIN.read_bytes(), info.public_key, lambda d: backend.sign_digest(NUBL2_LABEL, d))
    )
    return out


def _rogue_operator() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-made CA issuing an 'admin' client cert: right shape, wrong issuer."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "admin"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "mallory"),
                ]
            )
        )
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NuSec Test ICA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    previous = os.environ.get("SOFTHSM2_CONF")
    yield make_pki(tmp_path_factory.mktemp("svc-pki"))
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@contextmanager
def running_service(pki: Pki) -> Iterator[ServiceHandle]:
    """The real service for ``pki`` on 127.0.0.1; stopped, and its log removed, on the way out. It
    logs at info, so tests can wait for the events they depend on (``wait_for_abort``)."""
    env = {**pki.token.environ(), LOG_LEVEL_ENV: "info"}
    handle = run_in_background(pki.config(), env=env, migrate=True)
    try:
        yield handle
    finally:
        handle.stop()
        if handle.log_path is not None:
            handle.log_path.unlink(missing_ok=True)


def aborted_requests(handle: ServiceHandle) -> int:
    """How many requests the service has logged as aborted (a body cut short) so far."""
    assert handle.log_path is not None
    return handle.log_path.read_text().count("request aborted:")


def wait_for_abort(handle: ServiceHandle, before: int) -> None:
    """Return once the service has logged one more aborted request than ``before``: the event the
    checks below depend on, instead of a sleep that hopes the server got there first."""
    deadline = time.monotonic() + 30
    while aborted_requests(handle) <= before:
        assert time.monotonic() < deadline, "the service never logged the aborted request"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def service(pki_files: Pki) -> Iterator[ServiceHandle]:
    with running_service(pki_files) as handle:
        yield handle


def build_test_batch(pki: Pki, out: Path, **spec: Any) -> Path:
    """A bulk OTP batch in ``out`` built from ``spec`` on ``pki``'s token (whose KEK and seal signer
    are ``BATCH_KEK`` and ``BATCH_SIGNER``), chunks of 2."""
    raw = {
        "layout_version": 1,
        "root_cert": str(pki.root_pem),
        "ica_cert": str(pki.ica_pem),
        "hsm": {"uri": f"pkcs11:token={TOKEN_LABEL}", "kek_label": BATCH_KEK, "signer_label": BATCH_SIGNER},
        "chunk_size": 2,
        **spec,
    }
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(raw))
    with pki.token.open_backend() as backend:
        build_batch(load_spec(path), out, backend, jobs=1)
    return out


@pytest.fixture(scope="module")
def operator(service: ServiceHandle, pki_files: Pki) -> Iterator[ServiceClient]:
    with ServiceClient(
        service.url, pki_files.chain_pem, pki_files.operator_cert, pki_files.operator_key
    ) as c:
        yield c


@pytest.fixture(scope="module")
def admin(service: ServiceHandle, pki_files: Pki) -> Iterator[ServiceClient]:
    with ServiceClient(service.url, pki_files.chain_pem, pki_files.admin_cert, pki_files.admin_key) as c:
        yield c
