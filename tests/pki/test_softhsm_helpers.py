"""The SoftHSM2 helpers other areas reuse: private conf dirs, tokens by label, env for subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pki.errors import HsmError, TokenNotFoundError
from pki.hsm.softhsm import SoftHsmDir, softhsm_token


def test_tokens_by_label(hsm_dir: SoftHsmDir) -> None:
    a = hsm_dir.init_token("alpha")
    b = hsm_dir.init_token("beta")
    assert hsm_dir.token_labels() == ["alpha", "beta"]
    assert a.pin != b.pin and a.pin not in repr(a) and a.so_pin not in repr(a)
    with pytest.raises(HsmError, match="already exists"):
        hsm_dir.init_token("alpha")
    with pytest.raises(TokenNotFoundError):
        hsm_dir.token("gamma", "1234")
    assert hsm_dir.token("beta", b.pin).label == "beta"
    assert (hsm_dir.token_dir.stat().st_mode & 0o777) == 0o700
    with b.open_backend() as backend:
        backend.generate_ec_keypair("only-on-beta")
    with a.open_backend() as backend:
        assert backend.find_ec_keypair("only-on-beta") is None


def test_context_manager_restores_conf(tmp_path: Path) -> None:
    before = os.environ.get("SOFTHSM2_CONF")
    with softhsm_token(tmp_path / "ctx", "ctx-token") as tok:
        assert os.environ["SOFTHSM2_CONF"] == str(tok.conf_path)
        with tok.open_backend() as backend:
            backend.generate_ec_keypair("k")
    assert os.environ.get("SOFTHSM2_CONF") == before


def test_subprocess_reaches_token_through_environment(hsm_dir: SoftHsmDir) -> None:
    tok = hsm_dir.init_token("sub")
    with tok.open_backend() as backend:
        backend.generate_ec_keypair("made-here")
    code = (
        "from pki.hsm.pkcs11 import Pkcs11Backend\n"
        "b = Pkcs11Backend.from_uri('pkcs11:token=sub')\n"
        "print(b.find_ec_keypair('made-here') is not None)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUSEC_HSM")}
    env.update(tok.environ())
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"
    # Without a PIN the subprocess fails with a one-line error naming the problem.
    env.pop("NUSEC_HSM_PIN")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "PinSourceError: no HSM PIN" in res.stderr
    assert tok.pin not in res.stderr
