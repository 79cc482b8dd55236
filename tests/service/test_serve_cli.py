"""``nusec serve``: its help teaches the configuration, bad settings fail in one line, and the
command really serves (here in --insecure-dev mode, plain HTTP on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pki.service.server import free_port, run_in_background
from tests.service.conftest import TOKEN_LABEL, Pki

NUSEC = str(Path(sys.executable).with_name("nusec"))


def test_help_names_every_setting() -> None:
    out = subprocess.run(
        [NUSEC, "serve", "--help"], capture_output=True, text=True, timeout=60, env={"COLUMNS": "200"}
    )
    assert out.returncode == 0
    settings = "--hsm-uri NUSEC_HSM_PIN --root-cert --ica-cert --tls-cert --tls-key --db-url --host --port"
    for word in [*settings.split(), "--insecure-dev", "operator", "admin"]:
        assert word in out.stdout, word


def test_bad_configuration_is_one_line_and_nonzero(pki_files: Pki, tmp_path: Path) -> None:
    env = {**pki_files.token.environ(), "PATH": "/usr/bin:/bin"}
    base = [NUSEC, "serve", "--hsm-uri", f"pkcs11:token={TOKEN_LABEL};object=ica",
            "--root-cert", str(pki_files.root_pem), "--ica-cert", str(pki_files.ica_pem)]  # fmt: skip
    cases = [
        (base, "tls_cert"),  # HTTPS without a certificate
        ([*base, "--insecure-dev", "--host", "0.0.0.0"], "loopback"),
        (
            [*base, "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(pki_files.server_key)],
            "not found",
        ),
        ([*base, "--insecure-dev", "--db-url", "nonsense"], "db_url"),
    ]
    for argv, needle in cases:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], out.stderr
        assert pki_files.token.pin not in out.stderr + out.stdout
    no_pin = {k: v for k, v in env.items() if not k.startswith("NUSEC_HSM_PIN")}
    out = subprocess.run([*base, "--insecure-dev"], capture_output=True, text=True, timeout=60, env=no_pin)
    assert out.returncode == 2 and "NUSEC_HSM_PIN" in out.stderr


def test_insecure_dev_serves_plain_http_on_loopback(pki_files: Pki, tmp_path: Path) -> None:
    port = free_port()
    argv = [NUSEC, "serve", "--hsm-uri", f"pkcs11:token={TOKEN_LABEL};object=ica",
            "--root-cert", str(pki_files.root_pem), "--ica-cert", str(pki_files.ica_pem),
            "--db-url", f"sqlite:///{tmp_path / 'dev.db'}", "--port", str(port), "--insecure-dev",
            "--log-level", "warning"]  # fmt: skip
    env = {**pki_files.token.environ(), "PATH": "/usr/bin:/bin"}
    upgraded = subprocess.run([NUSEC, "db", "upgrade", "--db-url", f"sqlite:///{tmp_path / 'dev.db'}"],
                              capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/ca/chain", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 200 and "BEGIN CERTIFICATE" in response.json()["root_pem"]
        # in dev mode the caller is admin: the audit log is readable
        assert httpx.get(f"http://127.0.0.1:{port}/v1/audit/verify", timeout=5).json()["ok"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_refuses_an_unmigrated_database_naming_db_upgrade(pki_files: Pki, tmp_path: Path) -> None:
    env = {**pki_files.token.environ(), "PATH": "/usr/bin:/bin"}
    db_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    argv = [NUSEC, "serve", "--hsm-uri", f"pkcs11:token={TOKEN_LABEL};object=ica", "--insecure-dev",
            "--root-cert", str(pki_files.root_pem), "--ica-cert", str(pki_files.ica_pem), "--db-url", db_url,
            "--port", str(free_port())]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "nusec db upgrade" in lines[0], out.stderr
    status = subprocess.run([NUSEC, "db", "status", "--db-url", db_url, "--json"],
                            capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert status.returncode == 3 and json.loads(status.stdout)["current"] is False
    assert subprocess.run([NUSEC, "db", "upgrade", "--db-url", db_url], env=env, timeout=60).returncode == 0
    status = subprocess.run([NUSEC, "db", "status", "--db-url", db_url, "--json"],
                            capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert status.returncode == 0 and json.loads(status.stdout)["current"] is True


def test_wrong_key_label_or_foreign_server_cert_fail_in_one_line(pki_files: Pki, tmp_path: Path) -> None:
    env = {**pki_files.token.environ(), "PATH": "/usr/bin:/bin"}
    common = ["--root-cert", str(pki_files.root_pem), "--ica-cert", str(pki_files.ica_pem),
              "--db-url", f"sqlite:///{tmp_path / 'x.db'}"]  # fmt: skip
    out = subprocess.run(
        [NUSEC, "serve", "--hsm-uri", f"pkcs11:token={TOKEN_LABEL};object=no-such-key", "--insecure-dev",
         *common],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "no-such-key" in out.stderr
    out = subprocess.run(  # a server certificate the ICA did not issue (the rogue CA's)
        [NUSEC, "serve", "--hsm-uri", f"pkcs11:token={TOKEN_LABEL};object=ica", *common,
         "--tls-cert", str(pki_files.rogue_cert), "--tls-key", str(pki_files.rogue_key)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert out.returncode == 2 and "not issued by the ICA" in out.stderr, out.stderr


def test_run_in_background_thread_mode(pki_files: Pki, tmp_path: Path) -> None:
    config = pki_files.config(insecure_dev=True, db_url=f"sqlite:///{tmp_path / 't.db'}")
    pin_before = os.environ.get("NUSEC_HSM_PIN")
    with run_in_background(config, mode="thread", env=pki_files.token.environ(), migrate=True) as service:
        assert service.url.startswith("http://127.0.0.1:")
        chain = httpx.get(f"{service.url}/v1/ca/chain", timeout=10).json()
        assert chain["ica_pem"] == pki_files.ica_pem.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{service.url}/v1/ca/chain", timeout=2)
    assert os.environ.get("NUSEC_HSM_PIN") == pin_before  # the PIN does not linger in this process
