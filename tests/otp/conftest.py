"""Fixtures for the bulk OTP tests: a private SoftHSM2 token per test (KEK + seal signer), a real
P-256 RootCA/ICA made with cryptography, and a spec file pointing at them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.batch import BatchSpec, ensure_batch_keys, load_spec
from pki.hsm.pkcs11 import Pkcs11Backend
from pki.hsm.softhsm import SoftHsmToken, softhsm_token

KEK = "otp-test-kek"
SIGNER = "otp-test-signer"


@pytest.fixture
def token(tmp_path: Path) -> Iterator[SoftHsmToken]:
    with softhsm_token(tmp_path / "hsm", label="otp-test") as tok:
        yield tok


@pytest.fixture
def backend(token: SoftHsmToken) -> Iterator[Pkcs11Backend]:
    with token.open_backend() as b:
        ensure_batch_keys(b, KEK, SIGNER)
        yield b


def ca_certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    """A throwaway P-256 CA certificate (CN only, a year, CA:TRUE) signed by ``signer``."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


@pytest.fixture(scope="session")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ca")
    root_key = ec.generate_private_key(ec.SECP256R1())
    ica_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    root = ca_certificate("Test Root", root_key, "Test Root", root_key)
    ica = ca_certificate("Test ICA", ica_key, "Test Root", root_key)
    # claims Test Root, signed by someone else
    stray = ca_certificate("Stray ICA", other_key, "Test Root", other_key)
    for name, cert in (("root.pem", root), ("ica.pem", ica), ("stray.pem", stray)):
        (d / name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return d


SpecMaker = Callable[..., Path]


@pytest.fixture
def make_spec(tmp_path: Path, ca_files: Path, token: SoftHsmToken) -> SpecMaker:
    """Write a spec file; keyword arguments override/extend the defaults (None removes a key)."""

    def make(**over: Any) -> Path:
        spec: dict[str, Any] = {
            "count": 50,
            "layout_version": 1,
            "root_cert": str(ca_files / "root.pem"),
            "ica_cert": str(ca_files / "ica.pem"),
            "policy": {"secure_boot_required": True, "debug_lock_on_seal": True},
            "hsm": {"uri": f"pkcs11:token={token.label}", "kek_label": KEK, "signer_label": SIGNER},
            "chunk_size": 16,
        }
        for k, v in over.items():
            if v is None:
                spec.pop(k, None)
            else:
                spec[k] = v
        path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    return make


@pytest.fixture
def spec(make_spec: SpecMaker) -> BatchSpec:
    return load_spec(make_spec())
