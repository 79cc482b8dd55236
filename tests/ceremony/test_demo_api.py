"""The Python entry point ``nusec demo`` uses: a default rehearsal in a workdir, usable afterwards."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.config import default_rehearsal_config
from ceremony.errors import OutputExistsError
from ceremony.run import run_ceremony
from pki.hsm.pkcs11 import Pkcs11Backend
from tests.ceremony.conftest import nusec


def test_default_rehearsal_in_a_workdir_leaves_a_usable_ica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTHSM2_CONF", str(tmp_path / "unset.conf"))
    result = run_ceremony(default_rehearsal_config(tmp_path), rehearsal=True, rehearsal_dir=tmp_path)
    assert result.output_dir == tmp_path.resolve() / "ceremony"
    assert result.root_cert.is_file() and result.ica_cert.is_file() and result.transcript.is_file()
    token = result.rehearsal_issuing_token
    assert token is not None and token.conf_path.is_file()
    assert os.stat(token.user_pin_file).st_mode & 0o077 == 0
    summary = result.as_dict()
    assert summary["rehearsal_token"]["uri"].startswith("pkcs11:token=nusec-root")
    assert summary["rehearsal_issuing_token"]["uri"].startswith("pkcs11:token=nusec-issuing")

    # A later stage (the OEM service) reaches the ICA key on the issuing token through the URI
    # alone; the root key is not on that token.
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf_path))
    with Pkcs11Backend.from_uri(token.uri("nusec-ica")) as backend:
        sig = backend.sign_digest("nusec-ica", hashlib.sha256(b"board csr").digest())
        assert backend.list_labels() == ["nusec-ica"]
    pub = x509.load_pem_x509_certificate(result.ica_cert.read_bytes()).public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(sig, b"board csr", ec.ECDSA(hashes.SHA256()))

    # A second demo run into the same workdir is refused, not overwritten.
    with pytest.raises(OutputExistsError):
        run_ceremony(default_rehearsal_config(tmp_path), rehearsal=True, rehearsal_dir=tmp_path)


def test_cli_help_and_template_never_overwrites(tmp_path: Path) -> None:
    res = nusec("ceremony", "--help")
    assert res.returncode == 0
    for name in ("template", "validate", "run", "verify", "restore"):
        assert name in res.stdout
    target = tmp_path / "c.yaml"
    assert nusec("ceremony", "template", "-o", str(target)).returncode == 0
    before = target.read_text()
    res = nusec("ceremony", "template", "-o", str(target))
    assert res.returncode == 1 and "refusing to overwrite" in res.stderr
    assert target.read_text() == before
