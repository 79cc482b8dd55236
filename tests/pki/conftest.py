"""Fixtures for the PKI tests: a throwaway SoftHSM2 token per test, a backend on it, a CA chain.

Every fixture uses a real SoftHSM2 token in its own tmp dir (own SOFTHSM2_CONF), built with
``pki.hsm.softhsm`` (the same helper the ceremony and service tests use).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from pki.ca import Issuer, create_root_certificate, issue_ica_certificate
from pki.hsm.backend import KeyPolicy
from pki.hsm.pkcs11 import Pkcs11Backend
from pki.hsm.softhsm import SoftHsmDir, SoftHsmToken


@pytest.fixture
def hsm_dir(tmp_path: Path) -> Iterator[SoftHsmDir]:
    previous = os.environ.get("SOFTHSM2_CONF")
    yield SoftHsmDir.create(tmp_path / "hsm")
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def token(hsm_dir: SoftHsmDir) -> SoftHsmToken:
    return hsm_dir.init_token("nusec-test")


@pytest.fixture
def backend(token: SoftHsmToken) -> Iterator[Pkcs11Backend]:
    with token.open_backend() as b:
        yield b


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NuSec Test OEM"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass
class Chain:
    root: Issuer
    ica: Issuer
    dir: Path

    def write(self, filename: str, cert: x509.Certificate) -> Path:
        path = self.dir / filename
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    @property
    def root_pem(self) -> Path:
        return self.write("root.pem", self.root.certificate)

    @property
    def ica_pem(self) -> Path:
        return self.write("ica.pem", self.ica.certificate)


@pytest.fixture
def chain(backend: Pkcs11Backend, tmp_path: Path) -> Chain:
    backend.generate_ec_keypair("root", policy=KeyPolicy.ca_key())
    root_cert = create_root_certificate(backend, "root", name("NuSec Test Root CA"))
    root = Issuer(backend, "root", root_cert).check()
    ica_key = backend.generate_ec_keypair("ica", policy=KeyPolicy.ca_key())
    ica_cert = issue_ica_certificate(root, ica_key.public_key, name("NuSec Test ICA"))
    out = tmp_path / "certs"
    out.mkdir()
    return Chain(root, Issuer(backend, "ica", ica_cert).check(), out)


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
