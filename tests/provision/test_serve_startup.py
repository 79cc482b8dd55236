"""``nusec serve`` checks every input before it creates or migrates anything: each bad setting is
one line naming it, exit 2, and the database file does not exist afterwards."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.service.conftest import TOKEN_LABEL, Pki

NUSEC = str(Path(sys.executable).with_name("nusec"))


def _serve(
    pki: Pki, db: Path, *extra: str, port: int = 0, label: str = "ica"
) -> subprocess.CompletedProcess[str]:
    argv = [NUSEC, "serve", "--hsm-uri", f"pkcs11:token={TOKEN_LABEL};object={label}",
            "--root-cert", str(pki.root_pem), "--ica-cert", str(pki.ica_pem),
            "--db-url", f"sqlite:///{db}", "--port", str(port), *extra]  # fmt: skip
    env = {**pki.token.environ(), "PATH": "/usr/bin:/bin"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def test_bad_start_up_inputs_are_one_line_before_anything_is_created(pki_files: Pki, tmp_path: Path) -> None:
    tls = ["--tls-cert", str(pki_files.server_cert)]
    image = bytearray(pki_files.nubl2_image.read_bytes())
    image[0x480] ^= 1  # in NuBL2's code: the ROM would refuse it, and so does the service
    tampered = tmp_path / "nubl2-tampered.bin"
    tampered.write_bytes(bytes(image))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cases = [
            (
                "mismatched TLS key",
                [*tls, "--tls-key", str(pki_files.operator_key)],
                0,
                "ica",
                "does not belong to tls_cert",
            ),
            (
                "garbage TLS key",
                [*tls, "--tls-key", str(pki_files.server_cert)],
                0,
                "ica",
                "is not a PEM private key",
            ),
            ("port in use", [*tls, "--tls-key", str(pki_files.server_key)], port, "ica", "already in use"),
            (
                "no such ICA key in the HSM",
                [*tls, "--tls-key", str(pki_files.server_key)],
                0,
                "nope",
                "hsm_uri",
            ),
            (
                "NuBL2 image with one byte changed",
                [*tls, "--tls-key", str(pki_files.server_key), "--nubl2-image", str(tampered)],
                0,
                "ica",
                "nubl2_image",
            ),
            (
                "no such NuBL2 key in the HSM",
                [
                    *tls,
                    "--tls-key",
                    str(pki_files.server_key),
                    "--nubl2-image",
                    str(pki_files.nubl2_image),
                    "--nubl2-key-label",
                    "nope",
                ],
                0,
                "ica",
                "nubl2_key_label: no key 'nope'",
            ),
        ]
        for what, extra, p, label, needle in cases:
            db = tmp_path / f"{what.replace(' ', '-')}.db"
            out = _serve(pki_files, db, *extra, port=p, label=label)
            lines = out.stderr.strip().splitlines()
            assert out.returncode == 2, (what, out.returncode, out.stderr[-2000:])
            assert len(lines) == 1 and needle in lines[0], (what, out.stderr[-2000:])
            assert not db.exists(), f"{what}: the database was created before the checks passed"
            assert pki_files.token.pin not in out.stderr + out.stdout
    missing = tmp_path / "no-such-folder" / "service.db"
    out = _serve(pki_files, missing, "--insecure-dev")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
    assert f"folder {missing.parent} of the SQLite database does not exist" in lines[0]
    assert not missing.parent.exists()
