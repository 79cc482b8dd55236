"""`nusec demo` (what `make demo` runs) end to end, its artifacts checked by OpenSSL and imgtool."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class DemoRun:
    workdir: Path
    stdout: str
    stderr: str
    doc: dict[str, object]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One demo at the most verbose level (``-vv``, given after the sub-command)."""
    workdir = tmp_path_factory.mktemp("demo") / "out"
    res = subprocess.run(
        [str(BIN / "nusec"), "demo", "--workdir", str(workdir), "--batch-count", "64", "--json", "-vv"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return DemoRun(workdir, res.stdout, res.stderr, json.loads(res.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def demo(demo_run: DemoRun) -> dict[str, object]:
    return demo_run.doc


#: Where the demo's secrets belong (the token store and its PIN files, the custodian shares, the
#: TLS key files, the simulated boards' own state); no other file and no output may hold one.
SECRET_HOMES = ("softhsm/", "ceremony/shares/", "tls/admin.key", "tls/operator.key", "tls/server.key", "sim/")


def _forms(secret: bytes) -> list[bytes]:
    """The ways a secret would show up in a log: raw, hex (both cases), base64, base64url, decimal."""
    b64 = base64.b64encode(secret)
    forms = [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        b64,
        base64.urlsafe_b64encode(secret),
    ]
    return [*forms, b64.rstrip(b"="), str(int.from_bytes(secret, "big")).encode()]


def test_most_verbose_demo_logs_no_private_key_pin_or_share(demo_run: DemoRun) -> None:
    read = subprocess.run(
        [sys.executable, "-m", "tests.cli.demo_secrets", str(demo_run.workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found: dict[str, object] = json.loads(read.stdout)
    secrets = found["secrets"]
    pins, shares = found["pins"], found["shares"]
    assert isinstance(secrets, dict) and isinstance(pins, dict) and isinstance(shares, list)
    # what was read out: CA keys, backup KEK, TLS keys, 3 boards' identity keys, batch seed/DEK/keys
    assert len(secrets) >= 2 + 1 + 3 + 3 + 2 + 64 and len(pins) == 4 and len(shares) == 3
    needles: dict[bytes, str] = {}
    for name, value in secrets.items():
        for form in _forms(bytes.fromhex(value)):
            needles[form] = name
    for name, pin in pins.items():
        needles[pin.encode()] = f"PIN {name}"
    for k, mnemonic in enumerate(shares):
        words = mnemonic.split()
        for i in range(len(words) - 3):  # any 4 words in a row of a share
            needles[" ".join(words[i : i + 4]).encode()] = f"custodian share {k + 1}"
    needles[b"PRIVATE KEY-----"] = "a PEM private key"
    # the run really was at DEBUG, the service's log included (else this test proves nothing)
    service_log = (demo_run.workdir / "service.log").read_text()
    assert "DEBUG pki.hsm.pkcs11: unwrapping secret bytes" in demo_run.stderr
    assert "INFO ceremony.run: step 8/8" in demo_run.stderr
    assert "INFO pki.ca.issue: issued board-identity certificate" in service_log
    outputs: dict[str, bytes] = {"stdout": demo_run.stdout.encode(), "stderr": demo_run.stderr.encode()}
    for path in sorted(demo_run.workdir.rglob("*")):
        rel = path.relative_to(demo_run.workdir).as_posix()
        if path.is_file() and not rel.startswith(SECRET_HOMES):
            outputs[rel] = path.read_bytes()
    assert "service.log" in outputs and len(outputs) > 50
    leaks = [
        f"{what} in {where}" for where, data in outputs.items() for n, what in needles.items() if n in data
    ]
    assert not leaks, leaks[:10]


def test_summary_names_every_artifact(demo: dict[str, object]) -> None:
    for key in ("root_cert", "ica_cert", "transcript", "batch"):
        assert Path(str(demo[key])).exists(), key
    boards = demo["boards"]
    assert isinstance(boards, list) and len(boards) == 3
    assert len({b["uid"] for b in boards}) == 3
    assert sorted(b["mode"] for b in boards) == ["batch", "online", "online"]
    for b in boards:
        assert b["locked"] is True
        assert b["key_confirmed"] is True
        for key in ("board_cert", "otp_dump", "firmware_signed", "secure_boot_pub"):
            assert Path(b[key]).is_file(), key


def test_board_certificates_verify_with_openssl(demo: dict[str, object]) -> None:
    boards = demo["boards"]
    assert isinstance(boards, list)
    certs = [b["board_cert"] for b in boards]
    res = subprocess.run(
        ["openssl", "verify", "-CAfile", str(demo["root_cert"]), "-untrusted", str(demo["ica_cert"]), *certs],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": OK") == len(certs)


def test_signed_firmware_verifies_with_imgtool(demo: dict[str, object]) -> None:
    boards = demo["boards"]
    assert isinstance(boards, list)
    for b in boards:
        res = subprocess.run(
            [str(BIN / "imgtool"), "verify", "-k", b["secure_boot_pub"], b["firmware_signed"]],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0 and "correctly validated" in res.stdout, res.stdout + res.stderr


def test_ceremony_transcript_verifies(demo: dict[str, object]) -> None:
    res = subprocess.run(
        [str(BIN / "nusec"), "ceremony", "verify", str(demo["transcript"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_batch_verifies_offline(demo: dict[str, object]) -> None:
    res = subprocess.run(
        [str(BIN / "nusec"), "otp", "verify", str(demo["batch"]), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_batch_board_carries_the_claimed_image_key(demo: dict[str, object]) -> None:
    """The board provisioned with --mode batch burned image 0's secure-boot key, and its OTP digest
    (which covers everything but the board certificate) is the batch image's."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from nucore import otp

    boards = demo["boards"]
    assert isinstance(boards, list)
    (board,) = [b for b in boards if b["mode"] == "batch"]
    res = subprocess.run(
        [str(BIN / "nusec"), "otp", "show", str(demo["batch"]), "--index", "0", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    image = json.loads(res.stdout.strip().splitlines()[-1])
    burned = otp.parse(Path(board["otp_dump"]).read_bytes())
    assert burned.secure_boot_pub.hex() == image["secure_boot_pub"]
    assert burned.digest.hex() == image["digest"] and burned.digest_ok
    pub = load_pem_public_key(Path(board["secure_boot_pub"]).read_bytes())
    assert pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:] == burned.secure_boot_pub


def test_demo_refuses_a_foreign_nonempty_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    res = subprocess.run(
        [str(BIN / "nusec"), "demo", "--workdir", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 1
    assert "not a previous demo folder" in res.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_full_rehearsal_separate_tokens_and_crls(
    demo: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's "Done when" rehearsal, as `make demo` runs it: root -> intermediate on the
    issuing token -> root CRL -> batch keys -> NuBL2 key -> service on the issuing token only -> boards ->
    batch built without --create-hsm-keys; checked by openssl -crl_check_all and `verify`."""
    import os

    import pkcs11

    transcripts = demo["transcripts"]
    assert isinstance(transcripts, dict) and sorted(transcripts) == [
        "batch-keys",
        "crl",
        "intermediate",
        "nubl2-key",
    ]
    for kind, path in transcripts.items():
        res = subprocess.run([str(BIN / "nusec"), "ceremony", "verify", path], capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout.startswith(f"ok: {kind} transcript (REHEARSAL)"), res.stderr
    boards = demo["boards"]
    assert isinstance(boards, list)
    res = subprocess.run(
        ["openssl", "verify", "-crl_check_all", "-CAfile", str(demo["root_cert"]), "-untrusted",
         str(demo["ica_cert"]), "-CRLfile", str(demo["root_crl"]), "-CRLfile", str(demo["ica_crl"]),
         *[b["board_cert"] for b in boards]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout.count(": OK") == len(boards), res.stdout + res.stderr
    # Relying parties find the ICA's CRL and certificate from what the service issued.
    from cryptography.x509.oid import AuthorityInformationAccessOID

    from nusec.demo import DEMO_PKI_URL

    for b in boards:
        cert = x509.load_pem_x509_certificate(Path(b["board_cert"]).read_bytes())
        dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert [n.value for p in dp for n in p.full_name or []] == [f"{DEMO_PKI_URL}/ica-2.crl"]
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        assert [(d.access_method, d.access_location.value) for d in aia] == [
            (AuthorityInformationAccessOID.CA_ISSUERS, f"{DEMO_PKI_URL}/ica-2.cer")
        ]
    # The token the service and the batch used holds the new ICA and the batch keys, never the root.
    softhsm = Path(str(demo["workdir"])) / "softhsm"
    monkeypatch.setenv("SOFTHSM2_CONF", str(softhsm / "softhsm2.conf"))  # restored after this test
    lib = pkcs11.lib("/usr/lib/softhsm/libsofthsm2.so")
    lib.reinitialize()
    pin = (softhsm / "issuing-user.pin").read_text().strip()
    with lib.get_token(token_label="nusec-issuing").open(user_pin=pin) as session:
        labels = {
            str(o[pkcs11.Attribute.LABEL])
            for o in session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY})
        }
    lib.reinitialize()
    assert {
        "nusec-ica",
        "nusec-ica-2",
        "nusec-batch-seal",
        "nusec-nubl2",
    } <= labels and "nusec-root-ca" not in labels
    # A production-style `nusec otp build` on that token, without --create-hsm-keys.
    workdir = Path(str(demo["workdir"]))
    spec = workdir / "prod-batch.yaml"
    spec.write_text(
        f"count: 8\nlayout_version: 1\nroot_cert: {demo['root_cert']}\nica_cert: {demo['ica_cert']}\n"
        f'hsm: {{uri: "pkcs11:token=nusec-issuing?pin-source=file:{softhsm / "issuing-user.pin"}",'
        " kek_label: nusec-batch-kek, signer_label: nusec-batch-seal}\nchunk_size: 4\n"
    )
    res = subprocess.run(
        [str(BIN / "nusec"), "otp", "build", str(spec), "--out", str(workdir / "prod-batch"),
         "--no-progress", "--json"],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm / "softhsm2.conf")},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run(
        [str(BIN / "nusec"), "otp", "verify", str(workdir / "prod-batch")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
