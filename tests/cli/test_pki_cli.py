"""``nusec pki``: TLS credentials, revocation, CRLs and the certificate list, run as the installed
CLI (subprocess) against a real SoftHSM2 token, checked with openssl, pkilint's own CLI and the
real service on 127.0.0.1 (mutual TLS with the credentials the CLI made).

One token, one service and one database per module (their own SOFTHSM2_CONF); tests that change
the shared state (revocations, CRLs) use only boards they certify themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from pki.hsm.softhsm import SoftHsmDir, SoftHsmToken
from pki.service.config import ServiceConfig
from pki.service.server import ServiceHandle, run_in_background
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import make_ca

BIN = Path(sys.executable).parent / "nusec"
LINT_CRL = Path(sys.executable).parent / "lint_crl"
TOKEN_LABEL = "nusec-pki-cli"


@dataclass
class Ca:
    """A post-ceremony OEM: RootCA/ICA keys in a token, their certificates on disk, a service DB."""

    dir: Path
    token: SoftHsmToken
    root_pem: Path
    ica_pem: Path
    db_url: str

    @property
    def hsm_uri(self) -> str:
        return f"pkcs11:token={TOKEN_LABEL};object=ica?module-path={self.token.module_path}"

    def env(self, *, with_pin: bool = True) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUSEC_")}
        env.update(self.token.environ())
        if not with_pin:
            env.pop("NUSEC_HSM_PIN", None)
        return env

    def run(self, *args: str | Path, with_pin: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(BIN), "pki", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=self.env(with_pin=with_pin),
        )
        assert self.token.pin not in res.stdout + res.stderr  # the PIN never shows
        return res

    def hsm_args(self) -> list[str]:
        return ["--hsm-uri", self.hsm_uri, "--ica-cert", str(self.ica_pem)]

    def chain_args(self) -> list[str]:
        return [*self.hsm_args(), "--root-cert", str(self.root_pem)]


def last_json(res: subprocess.CompletedProcess[str]) -> dict[str, object]:
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert isinstance(doc, dict)
    return doc


def one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode != 0, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)


def verify(ca: Ca, leaf: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return openssl("verify", "-CAfile", ca.root_pem, "-untrusted", ca.ica_pem, *extra, leaf)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ca]:
    previous = os.environ.get("SOFTHSM2_CONF")
    root = tmp_path_factory.mktemp("pki-cli")
    token = SoftHsmDir.create(root / "hsm").init_token(TOKEN_LABEL)
    with token.open_backend() as backend:
        root_cert, ica_cert = make_ca(backend, "root-ca", "ica", "NuSec CLI Test")
    (root / "root-ca.pem").write_bytes(root_cert.public_bytes(serialization.Encoding.PEM))
    (root / "ica.pem").write_bytes(ica_cert.public_bytes(serialization.Encoding.PEM))
    yield Ca(root, token, root / "root-ca.pem", root / "ica.pem", f"sqlite:///{root / 'service.db'}")
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@dataclass
class Deployment:
    tls: Path
    alice: Path  # operator credentials folder
    service: ServiceHandle

    def client(self, stem: str) -> ServiceClient:
        return ServiceClient(
            self.service.url,
            self.alice / "ca-bundle.pem",
            self.alice / f"{stem}.pem",
            self.alice / f"{stem}.key",
        )


@pytest.fixture(scope="module")
def deployed(ca: Ca) -> Iterator[Deployment]:
    """What the docs tell the OEM to do after the ceremony: server-cert, operator-cert, serve."""
    tls, alice = ca.dir / "tls", ca.dir / "operators"
    upgraded = subprocess.run(
        [str(BIN), "db", "upgrade", "--db-url", ca.db_url], capture_output=True, text=True, timeout=120
    )
    assert upgraded.returncode == 0, upgraded.stderr
    res = ca.run("server-cert", *ca.chain_args(), "--out", tls, "--ip", "127.0.0.1", "--db-url", ca.db_url)
    assert res.returncode == 0, res.stderr
    for name, role in (("alice", "operator"), ("Bob Admin", "admin")):
        res = ca.run(
            "operator-cert",
            *ca.chain_args(),
            "--name",
            name,
            "--role",
            role,
            "--out",
            alice,
            "--db-url",
            ca.db_url,
        )
        assert res.returncode == 0, res.stderr
    config = ServiceConfig(
        hsm_uri=ca.hsm_uri,
        root_cert=ca.root_pem,
        ica_cert=ca.ica_pem,
        tls_cert=tls / "server.pem",
        tls_key=tls / "server.key",
        db_url=ca.db_url,
        host="127.0.0.1",
        port=0,
    )
    handle = run_in_background(config, env=ca.token.environ(), migrate=True)
    try:
        yield Deployment(tls, alice, handle)
    finally:
        handle.stop()
        if handle.log_path is not None:
            handle.log_path.unlink(missing_ok=True)


def certify_board(deployed: Deployment, out: Path) -> tuple[Board, Path]:
    board = Board()
    with deployed.client("alice") as op:
        op.register(board.uid_hex)
        pem = op.certify(board.uid_hex, board.csr_pem())["certificate_pem"]
    out.write_text(str(pem))
    return board, out


# --- help ---------------------------------------------------------------------------------------


def test_help_teaches_each_command_with_an_example(ca: Ca) -> None:
    top = ca.run("--help")
    assert top.returncode == 0
    for sub in ("server-cert", "operator-cert", "revoke", "crl", "list"):
        assert sub in top.stdout
        res = ca.run(sub, "--help")
        assert res.returncode == 0, res.stderr
        assert "Example" in res.stdout and f"nusec pki {sub}" in res.stdout
        assert "--json" in res.stdout


# --- credentials --------------------------------------------------------------------------------


def test_server_cert_is_a_tls_server_certificate_openssl_accepts(ca: Ca, deployed: Deployment) -> None:
    cert_path, key_path = deployed.tls / "server.pem", deployed.tls / "server.key"
    ok = verify(ca, cert_path, "-purpose", "sslserver")
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    # serverAuth only: openssl refuses it as a client certificate (the purpose check is real).
    refused = verify(ca, cert_path, "-purpose", "sslclient")
    assert refused.returncode == 2 and "unsuitable certificate purpose" in refused.stdout + refused.stderr
    assert key_path.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert key.public_key() == cert.public_key()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert (deployed.tls / "ca-bundle.pem").read_bytes() == ca.ica_pem.read_bytes() + ca.root_pem.read_bytes()


def test_operator_cert_is_a_tls_client_certificate_openssl_accepts(ca: Ca, deployed: Deployment) -> None:
    for stem, role in (("alice", "operator"), ("bob-admin", "admin")):
        path = deployed.alice / f"{stem}.pem"
        ok = verify(ca, path, "-purpose", "sslclient")
        assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
        refused = verify(ca, path, "-purpose", "sslserver")
        assert refused.returncode == 2
        assert "unsuitable certificate purpose" in refused.stdout + refused.stderr
        assert (deployed.alice / f"{stem}.key").stat().st_mode & 0o777 == 0o600
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        assert [a.value for a in ou] == [role]


def test_service_accepts_the_cli_credentials_over_mutual_tls(ca: Ca, deployed: Deployment) -> None:
    with deployed.client("alice") as op:
        chain = op.chain()
    assert chain["ica_pem"].strip() == ca.ica_pem.read_text().strip()
    with deployed.client("bob-admin") as admin:
        rows = admin.audit().json()["entries"]
        chain_ok = admin.audit_verify().json()
    # The CLI's issuance rows sit in the service's hash chain, and the chain still verifies.
    assert [r["action"] for r in rows[:3]] == [
        "cli.issue-service-tls-server",
        "cli.issue-operator-client",
        "cli.issue-operator-client",
    ]
    assert chain_ok["ok"] is True, chain_ok


# --- revocation and CRLs ------------------------------------------------------------------------


def test_revoke_then_crl_rejects_the_revoked_board_and_accepts_another(
    ca: Ca, deployed: Deployment, tmp_path: Path
) -> None:
    bad, bad_pem = certify_board(deployed, tmp_path / "bad.pem")
    _good, good_pem = certify_board(deployed, tmp_path / "good.pem")
    bad_serial = x509.load_pem_x509_certificate(bad_pem.read_bytes()).serial_number
    # openssl's spelling of the serial (upper case) is accepted.
    res = ca.run(
        "revoke", "--db-url", ca.db_url, format(bad_serial, "X"), "--reason", "keyCompromise", "--json"
    )
    assert res.returncode == 0, res.stderr
    doc = last_json(res)
    assert doc["already_revoked"] is False and doc["reason"] == "keyCompromise"
    again = ca.run("revoke", "--db-url", ca.db_url, format(bad_serial, "x"))
    assert again.returncode == 0 and "already revoked" in again.stdout, again.stdout + again.stderr

    crl_pem = tmp_path / "crl.pem"
    res = ca.run("crl", *ca.hsm_args(), "--db-url", ca.db_url, "--out", crl_pem, "--json")
    assert res.returncode == 0, res.stderr
    doc = last_json(res)
    assert format(bad_serial, "x") in doc["serials"]  # type: ignore[operator]

    rejected = verify(ca, bad_pem, "-crl_check", "-CRLfile", crl_pem)
    assert rejected.returncode == 2
    assert "certificate revoked" in rejected.stdout + rejected.stderr
    accepted = verify(ca, good_pem, "-crl_check", "-CRLfile", crl_pem)
    assert accepted.returncode == 0 and ": OK" in accepted.stdout, accepted.stdout + accepted.stderr

    crl = x509.load_pem_x509_crl(crl_pem.read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(bad_serial)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.key_compromise
    )
    good_serial = x509.load_pem_x509_certificate(good_pem.read_bytes()).serial_number
    assert crl.get_revoked_certificate_by_serial_number(good_serial) is None
    assert openssl("crl", "-in", crl_pem, "-CAfile", deployed.tls / "ca-bundle.pem", "-noout").returncode == 0
    lint = subprocess.run(
        [str(LINT_CRL), "lint", "-t", "CRL", "-p", "PKIX", "-s", "ERROR", "-f", "JSON", str(crl_pem)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # The next CRL gets the next number; an existing --out is refused and left as it was.
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    before = crl_pem.read_bytes()
    refused = ca.run("crl", *ca.hsm_args(), "--db-url", ca.db_url, "--out", crl_pem)
    one_line_error(refused, "already exists")
    assert crl_pem.read_bytes() == before
    res = ca.run("crl", *ca.hsm_args(), "--db-url", ca.db_url, "--out", tmp_path / "crl2.pem", "--json")
    assert res.returncode == 0, res.stderr
    assert last_json(res)["crl_number"] == number + 1

    listed = last_json(ca.run("list", "--db-url", ca.db_url, "--uid", bad.uid_hex, "--json"))
    certs = listed["certificates"]
    assert isinstance(certs, list) and len(certs) == 1
    assert certs[0]["serial"] == format(bad_serial, "x") and certs[0]["revoked"] is True
    assert certs[0]["reason"] == "keyCompromise" and certs[0]["profile"] == "board-identity"


def test_list_shows_every_recorded_certificate(ca: Ca, deployed: Deployment, tmp_path: Path) -> None:
    board, pem = certify_board(deployed, tmp_path / "board.pem")
    res = ca.run("list", "--db-url", ca.db_url, "--json")
    assert res.returncode == 0, res.stderr
    certs = last_json(res)["certificates"]
    assert isinstance(certs, list)
    profiles = {c["profile"] for c in certs}
    assert {"service-tls-server", "operator-client", "board-identity"} <= profiles
    serial = format(x509.load_pem_x509_certificate(pem.read_bytes()).serial_number, "x")
    mine = [c for c in certs if c["serial"] == serial]
    assert len(mine) == 1 and mine[0]["revoked"] is False and board.uid_hex.upper() in mine[0]["subject"]
    text = ca.run("list", "--db-url", ca.db_url)
    assert text.returncode == 0 and serial in text.stdout


# --- bad input: one line, non-zero, nothing written ---------------------------------------------


def test_missing_pin_is_refused_before_anything_is_written(ca: Ca, tmp_path: Path) -> None:
    out = tmp_path / "tls"
    res = ca.run("server-cert", *ca.chain_args(), "--out", out, with_pin=False)
    one_line_error(res, "PIN")
    assert not out.exists()
    crl = tmp_path / "crl.pem"
    one_line_error(ca.run("crl", *ca.hsm_args(), "--db-url", ca.db_url, "--out", crl, with_pin=False), "PIN")
    assert not crl.exists()


def test_existing_output_is_never_overwritten(ca: Ca, deployed: Deployment) -> None:
    before = {p.name: p.read_bytes() for p in deployed.tls.iterdir()}
    res = ca.run("server-cert", *ca.chain_args(), "--out", deployed.tls, "--json")
    one_line_error(res, "already exists")
    assert last_json(res)["ok"] is False
    assert {p.name: p.read_bytes() for p in deployed.tls.iterdir()} == before
    res = ca.run(
        "operator-cert", *ca.chain_args(), "--name", "alice", "--role", "operator", "--out", deployed.alice
    )
    one_line_error(res, "already exists")


def test_wrong_role_name_and_ica_are_refused(ca: Ca, tmp_path: Path) -> None:
    out = tmp_path / "ops"
    base = ["operator-cert", *ca.chain_args(), "--out", str(out)]
    one_line_error(ca.run(*base, "--name", "eve", "--role", "root"), "--role")
    one_line_error(ca.run(*base, "--name", "x" * 65, "--role", "admin"), "--name")
    wrong_ica = ["--hsm-uri", ca.hsm_uri, "--ica-cert", str(ca.root_pem), "--root-cert", str(ca.root_pem)]
    one_line_error(
        ca.run("operator-cert", *wrong_ica, "--out", str(out), "--name", "eve", "--role", "operator"),
        "does not match",
    )
    one_line_error(
        ca.run("server-cert", *ca.chain_args(), "--out", str(out), "--ip", "not-an-ip"), "IP address"
    )
    assert not out.exists()


def test_a_second_live_operator_certificate_with_a_cn_in_use_is_refused(
    ca: Ca, deployed: Deployment, tmp_path: Path
) -> None:
    again = ca.run("operator-cert", *ca.chain_args(), "--name", "alice", "--role", "admin",
                   "--out", tmp_path / "again", "--db-url", ca.db_url)  # fmt: skip
    one_line_error(again, "live", "alice")
    assert not (tmp_path / "again" / "alice.pem").exists()
    first = last_json(ca.run("operator-cert", *ca.chain_args(), "--name", "dora", "--role", "operator",
                             "--out", tmp_path / "d1", "--db-url", ca.db_url, "--json"))  # fmt: skip
    one_line_error(ca.run("operator-cert", *ca.chain_args(), "--name", "dora", "--role", "operator",
                          "--out", tmp_path / "d2", "--db-url", ca.db_url), "dora")  # fmt: skip
    assert ca.run("revoke", "--db-url", ca.db_url, str(first["serial"])).returncode == 0
    renewed = ca.run("operator-cert", *ca.chain_args(), "--name", "dora", "--role", "operator",
                     "--out", tmp_path / "d3", "--db-url", ca.db_url)  # fmt: skip
    assert renewed.returncode == 0, renewed.stderr  # the old one is revoked: the name is free again


def test_pki_refuses_an_unmigrated_database_naming_db_upgrade(ca: Ca, tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    (tmp_path / "fresh.db").touch()
    one_line_error(ca.run("list", "--db-url", fresh), "nusec db upgrade")
    one_line_error(ca.run("revoke", "--db-url", fresh, "1234abcd"), "nusec db upgrade")


def test_revoke_and_list_refuse_bad_serials_and_databases(
    ca: Ca, deployed: Deployment, tmp_path: Path
) -> None:
    one_line_error(ca.run("revoke", "--db-url", ca.db_url, "1234abcd"), "no certificate with serial 1234abcd")
    one_line_error(ca.run("revoke", "--db-url", ca.db_url, "xyz"), "not a hexadecimal")
    one_line_error(
        ca.run("revoke", "--db-url", ca.db_url, "1234abcd", "--reason", "certificateHold"), "--reason"
    )
    missing = tmp_path / "nope.db"
    one_line_error(ca.run("list", "--db-url", f"sqlite:///{missing}"), "does not exist")
    assert not missing.exists()
    one_line_error(ca.run("list", "--db-url", ca.db_url, "--uid", "12"), "--uid")
