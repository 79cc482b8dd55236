"""``nusec serve --config FILE``: the template names every setting and checks as a file, bad
files fail in one line naming the field (exit 2), and options on the command line override the
file (shown by the service really answering on the command line's port)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from pki.service.config import ServiceConfig
from pki.service.config_file import SERVE_ONLY, ServeFile
from pki.service.server import free_port
from tests.service.conftest import TOKEN_LABEL, Pki

NUSEC = str(Path(sys.executable).with_name("nusec"))


def _run(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NUSEC, *argv], capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def test_template_lists_every_service_setting_and_is_a_valid_file(tmp_path: Path) -> None:
    out = _run("serve", "template")
    assert out.returncode == 0, out.stderr
    settings = {f.name for f in dataclasses.fields(ServiceConfig)} | set(SERVE_ONLY)
    assert set(ServeFile.model_fields) == settings  # the file can set every ServiceConfig field
    written = {line.lstrip("# ").split(":")[0] for line in out.stdout.splitlines() if ":" in line[:40]}
    assert settings <= written, settings - written
    data = yaml.safe_load(out.stdout)
    assert data["port"] == 8443 and data["hsm_uri"].startswith("pkcs11:")
    (tmp_path / "serve.yaml").write_text(out.stdout)
    # as a file it fails only on what this machine lacks (the example certificates), by field
    checked = _run(
        "serve", "validate", str(tmp_path / "serve.yaml"), env={"NUSEC_HSM_PIN": "x", "PATH": "/usr/bin"}
    )
    assert checked.returncode == 2
    assert checked.stderr.strip() == f"nusec serve validate: root_cert: {tmp_path / 'root-ca.pem'} not found"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("prot: 8443\n", "unknown field 'prot'"),
        ("port: eighty\n", "port: Input should be a valid integer"),
        ("hsm_uri: x\n", "root_cert: required (in the --config file or as --root-cert)"),
        ("- a list\n", "expected a YAML mapping of settings"),
        ("port: [\n", "malformed YAML at line"),
        ("log_level: loud\n", "log_level: Input should be"),
        ("db_url: sqlite:///x.db\n", "hsm_uri: required (in the --config file or as --hsm-uri)"),
    ],
)
def test_bad_file_is_one_line_naming_the_field(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    out = _run("serve", "validate", str(path))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and error in lines[0], out.stderr


def test_range_errors_name_the_field(pki_files: Pki, tmp_path: Path) -> None:
    env = {**pki_files.token.environ(), "PATH": "/usr/bin:/bin"}
    base: dict[str, object] = {"hsm_uri": f"pkcs11:token={TOKEN_LABEL};object=ica", "insecure_dev": True,
            "root_cert": str(pki_files.root_pem), "ica_cert": str(pki_files.ica_pem)}  # fmt: skip
    cases: list[tuple[dict[str, object], str]] = [
        ({"port": 70000}, "port: 70000 is not a TCP port"),
        ({"body_timeout": 0.1}, "body_timeout: must be between 0.5 and 3600 seconds"),
        ({"max_hsm_keys": 0}, "max_registrations, max_hsm_keys: must be at least 1"),
        ({"host": "10.0.0.1"}, "insecure_dev: plain HTTP is allowed on loopback only, not on 10.0.0.1"),
    ]
    for extra, error in cases:
        path = tmp_path / "serve.yaml"
        path.write_text(yaml.safe_dump({**base, **extra}))
        out = _run("serve", "validate", str(path), "--json", env=env)
        assert out.returncode == 2 and json.loads(out.stdout) == {"ok": False, "error": error}, out.stderr
    path.write_text(yaml.safe_dump(base))
    out = _run("serve", "validate", str(path), "--json", env=env)
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True, out.stderr


def test_command_line_overrides_the_file_and_paths_are_relative_to_it(pki_files: Pki, tmp_path: Path) -> None:
    env = {**pki_files.token.environ(), "PATH": "/usr/bin:/bin"}
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "root.pem").write_bytes(pki_files.root_pem.read_bytes())
    (folder / "ica.pem").write_bytes(pki_files.ica_pem.read_bytes())
    db_url = f"sqlite:///{tmp_path / 'dev.db'}"
    file_port, cli_port = free_port(), free_port()
    (folder / "serve.yaml").write_text(
        yaml.safe_dump(
            {
                "hsm_uri": f"pkcs11:token={TOKEN_LABEL};object=ica",
                "root_cert": "root.pem",
                "ica_cert": "ica.pem",
                "insecure_dev": True,
                "host": "10.0.0.1",
                "port": file_port,
                "db_url": db_url,
                "log_level": "warning",
            }
        )
    )
    assert _run("db", "upgrade", "--db-url", db_url, env=env).returncode == 0
    # the file alone is refused (plain HTTP off loopback), naming the field
    refused = _run("serve", "--config", str(folder / "serve.yaml"), env=env, cwd=tmp_path)
    assert (
        refused.returncode == 2 and "insecure_dev: plain HTTP is allowed on loopback only" in refused.stderr
    )
    argv = [
        NUSEC,
        "serve",
        "--config",
        str(folder / "serve.yaml"),
        "--host",
        "127.0.0.1",
        "--port",
        str(cli_port),
    ]
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{cli_port}/v1/ca/chain", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 200 and "BEGIN CERTIFICATE" in response.json()["root_pem"]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{file_port}/v1/ca/chain", timeout=2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
