"""The other ceremony types (intermediate, crl, batch-keys, nubl2-key) and `nusec hsm check` on real SoftHSM2
tokens; oracles: the OpenSSL CLI and python-pkcs11 read directly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony import batch_keys, crl, intermediate, nubl2_key
from ceremony.config import load_config
from ceremony.errors import CeremonyError, ConfigError
from ceremony.kinds import TYPES, template
from ceremony.run import run_ceremony
from ceremony.transcript import verify_transcript
from nucore import mcuboot
from pki.hsm.softhsm import SoftHsmDir, SoftHsmToken
from tests.ceremony.conftest import issuing_token, nusec, token_objects, write_config
from tests.sim.firmware_board import IMGTOOL


def _other(module: ModuleType, folder: Path, token: SoftHsmToken, root_pem: Path, **edits: str) -> Path:
    """``module``'s template pointed at the test tokens and PIN files in ``folder``."""
    text = (
        template(module.__name__.rsplit(".", 1)[-1].replace("_", "-"))
        .replace("token_label: nusec-root", f"token_label: {token.label}")
        .replace("token_label: nusec-issuing", f"token_label: {token.label}-iss")
        .replace("{env: NUSEC_HSM_PIN}", "{file: user.pin}")
        .replace("{env: NUSEC_HSM_SO_PIN}", "{file: so.pin}")
        .replace("{env: NUSEC_ISSUING_PIN}", "{file: issuing-user.pin}")
        .replace("{env: NUSEC_ISSUING_SO_PIN}", "{file: issuing-so.pin}")
        .replace("certificate: ceremony-out/root-ca.pem", f"certificate: {root_pem}")
    )
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{module.__name__.rsplit('.', 1)[-1]}.yaml"
    path.write_text(text)
    return path


def test_every_template_validates_and_duties_need_rehearsal(tmp_path: Path) -> None:
    for kind in TYPES:
        path = tmp_path / f"{kind}.yaml"
        assert nusec("ceremony", "template", "--type", kind, "-o", str(path)).returncode == 0
        res = nusec("ceremony", "validate", str(path), "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["type"] == kind
        path.write_text(path.read_text().replace('    - "Bob Witness"', '    - "Alice Operator"'))
        res = nusec("ceremony", "validate", str(path))
        assert (
            res.returncode == 1
            and "also a witness (separate duties; allowed only with --rehearsal)" in res.stderr
        )
        assert nusec("ceremony", "validate", str(path), "--rehearsal").returncode == 0
    with pytest.raises(ConfigError, match="unknown ceremony type 'sub-ca'"):
        template("sub-ca")
    stale = tmp_path / "root.yaml"
    stale.write_text(template("root").replace("not_before: 20", "not_before: 19", 2))
    res = nusec("ceremony", "validate", str(stale))
    assert res.returncode == 1 and "check the clock and the reviewed dates" in res.stderr


def test_intermediate_crl_batch_keys_on_real_tokens(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    token = softhsm.init_token("oem-root")
    issuing = issuing_token(token)
    root = run_ceremony(load_config(write_config(tmp_path, token)))

    # intermediate: a new ICA on the issuing token, signed by the offline root
    ica2 = intermediate.run(
        intermediate.parse(
            _other(intermediate, tmp_path, token, root.root_cert).read_text(), base_dir=tmp_path
        )
    )
    assert sorted(o for o in token_objects(issuing) if o[0] == "PRIVATE_KEY") == [
        ("PRIVATE_KEY", "nusec-ica"),
        ("PRIVATE_KEY", "nusec-ica-2"),
    ]
    ok = subprocess.run(
        ["openssl", "verify", "-CAfile", str(root.root_cert), str(ica2.ica_cert)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ": OK" in ok.stdout
    assert verify_transcript(ica2.transcript, root_cert=root.root_cert).kind == "intermediate"
    with pytest.raises(CeremonyError, match=r"holds key 'nusec-ica-2' of the finished intermediate ceremony"):
        intermediate.run(
            intermediate.parse(
                _other(
                    intermediate,
                    tmp_path,
                    token,
                    root.root_cert,
                    **{"directory: intermediate-out": "directory: i2"},
                ).read_text(),
                base_dir=tmp_path,
            )
        )
    # A root certificate whose key is not the root token's key: refused before anything is made.
    with pytest.raises(CeremonyError, match="is not the certificate's key"):
        intermediate.run(
            intermediate.parse(
                _other(intermediate, tmp_path, token, ica2.ica_cert,
                       **{"directory: intermediate-out": "directory: i3",
                          "key_label: nusec-ica-2": "key_label: nusec-ica-3"}).read_text(),
                base_dir=tmp_path,
            )
        )  # fmt: skip
    assert ("PRIVATE_KEY", "nusec-ica-3") not in token_objects(issuing)

    # crl: the root CRL revoking the first ICA, from the reviewed dates
    serial = format(x509.load_pem_x509_certificate(root.ica_cert.read_bytes()).serial_number, "x")
    revoked = f'revoked:\n    - {{serial: "{serial}", revoked_at: 2026-01-01, reason: superseded}}'
    res = crl.run(
        crl.parse(
            _other(crl, tmp_path, token, root.root_cert, **{"revoked: []": revoked}).read_text(),
            base_dir=tmp_path,
        )
    )
    text = subprocess.run(
        ["openssl", "crl", "-in", str(res.crl), "-noout", "-text"], capture_output=True, text=True
    ).stdout
    assert (
        serial.upper() in text.upper()
        and "Superseded" in text
        and "X509v3 CRL Number: \n                1" in text
    )
    ok = subprocess.run(
        ["openssl", "crl", "-in", str(res.crl), "-CAfile", str(root.root_cert), "-noout"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "verify OK" in ok.stdout + ok.stderr
    bad = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", str(root.root_cert), "-CRLfile", str(res.crl),
         str(root.ica_cert)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr

    # batch-keys: KEK and seal signer on the issuing token, transcript signed by the signer
    keys = batch_keys.run(
        batch_keys.parse(_other(batch_keys, tmp_path, token, root.root_cert).read_text(), base_dir=tmp_path)
    )
    objs = token_objects(issuing)
    assert ("SECRET_KEY", "nusec-batch-kek") in objs and ("PRIVATE_KEY", "nusec-batch-seal") in objs
    assert verify_transcript(keys.transcript).kind == "batch-keys"
    assert not any(o[1] == "nusec-batch-kek" for o in token_objects(token))  # never on the root token
    with pytest.raises(CeremonyError, match="of the finished batch-keys ceremony"):
        batch_keys.run(
            batch_keys.parse(
                _other(
                    batch_keys,
                    tmp_path,
                    token,
                    root.root_cert,
                    **{"directory: batch-keys-out": "directory: b2"},
                ).read_text(),
                base_dir=tmp_path,
            )
        )


def test_hsm_check_cli_on_softhsm(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    token = softhsm.init_token("oem-svc")
    pin = tmp_path / "pin"
    pin.write_text(token.pin + "\n")
    env = {"SOFTHSM2_CONF": str(token.conf_path)}
    for role in ("root", "issuing", "service", "batch"):
        res = nusec(
            "hsm",
            "check",
            "--uri",
            f"pkcs11:token=oem-svc?pin-source=file:{pin}",
            "--role",
            role,
            "--json",
            env=env,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        doc = json.loads(res.stdout)
        assert doc["ok"] and doc["token"]["token_model"] == "SoftHSM v2"
        trusted = [c for c in doc["checks"] if c["name"] == "trusted_session_kek"]
        assert all(c["ok"] is None for c in trusted)  # no SO PIN given: skipped, not claimed
    res = nusec("hsm", "check", "--uri", f"pkcs11:token=oem-svc?pin-source=file:{pin}", "--role", "root",
                env={**env, "NUSEC_HSM_SO_PIN": token.so_pin})  # fmt: skip
    assert res.returncode == 0 and "ok      capability trusted_session_kek" in res.stdout
    assert token_objects(token) == []  # probes wrote nothing
    res = nusec(
        "hsm", "check", "--uri", f"pkcs11:token=nope?pin-source=file:{pin}", "--role", "root", env=env
    )
    assert res.returncode == 2 and res.stderr == "error: no PKCS#11 token labelled 'nope'\n"


def test_restore_ceremony_from_its_own_file(tmp_path: Path) -> None:
    """`type: restore`: the reviewed file names the ceremony folder and the shares handed in."""
    (tmp_path / "root.yaml").write_text(template("root"))
    reh = tmp_path / "r"
    assert (
        nusec(
            "ceremony", "run", str(tmp_path / "root.yaml"), "--rehearsal", "--rehearsal-dir", str(reh)
        ).returncode
        == 0
    )
    cfg = reh / "restore.yaml"  # next to ceremony-out, as the template's relative paths expect
    cfg.write_text(template("restore"))
    res = nusec("ceremony", "run", str(cfg), "--rehearsal", "--rehearsal-dir", str(tmp_path / "r2"), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["type"] == "restore" and out["shares_used"] == 2
    ver = nusec(
        "ceremony", "verify", out["transcript"], "--root-cert", str(reh / "ceremony-out" / "root-ca.pem")
    )
    assert ver.returncode == 0 and ver.stdout.startswith("ok: restore transcript (REHEARSAL)")
    cfg.write_text(template("restore").replace("01-carol-custodian.txt", "03-erin-custodian.txt").replace(
        "    - ceremony-out/shares/02-dave-custodian.txt\n", ""))  # fmt: skip
    res = nusec("ceremony", "run", str(cfg), "--rehearsal", "--rehearsal-dir", str(tmp_path / "r3"))
    assert res.returncode == 1 and res.stderr == "error: need 2 shares, got 1\n"


def test_configured_crl_dp_and_aia_reach_issued_certificates(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    """root.crl_url/issuer_url go into the ICA certificate; ica.crl_url/issuer_url are recorded on
    the issuing token, and `nusec pki server-cert` with that ICA key puts them into what it issues."""
    token = softhsm.init_token("oem-root")
    urls = {
        "  # crl_url: http://pki.example.com/root.crl ": "  crl_url: http://pki.example.com/root.crl ",
        "  # issuer_url: http://pki.example.com/root.cer ": "  issuer_url: http://pki.example.com/root.cer ",
        "  # crl_url: http://pki.example.com/ica.crl": "  crl_url: http://pki.example.com/ica.crl",
        "  # issuer_url: http://pki.example.com/ica.cer": "  issuer_url: http://pki.example.com/ica.cer",
    }
    result = run_ceremony(load_config(write_config(tmp_path, token, extra=urls)))
    ica = x509.load_pem_x509_certificate(result.ica_cert.read_bytes())
    dp = ica.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name == [x509.UniformResourceIdentifier("http://pki.example.com/root.crl")]
    res = nusec(
        "pki", "server-cert",
        "--hsm-uri",
        f"pkcs11:token=oem-root-iss;object=nusec-ica?pin-source=file:{tmp_path / 'issuing-user.pin'}",
        "--ica-cert", str(result.ica_cert), "--root-cert", str(result.root_cert),
        "--out", str(tmp_path / "tls"),
        env={"SOFTHSM2_CONF": str(token.conf_path)},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    server = x509.load_pem_x509_certificate((tmp_path / "tls" / "server.pem").read_bytes())
    dp = server.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name == [x509.UniformResourceIdentifier("http://pki.example.com/ica.crl")]
    aia = server.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location == x509.UniformResourceIdentifier("http://pki.example.com/ica.cer")


def test_nubl2_key_ceremony_makes_the_rom_root_key_and_signs_nubl2(
    softhsm: SoftHsmDir, tmp_path: Path
) -> None:
    """The NuBL2 key is made on the issuing token only, the signed NuBL2 verifies with it (imgtool,
    KEYHASH of that key), the transcript verifies, and a second run is refused before any HSM write."""
    token = softhsm.init_token("oem-root")
    issuing = issuing_token(token)
    root = run_ceremony(load_config(write_config(tmp_path, token)))
    raw = Path(__file__).resolve().parents[2] / "nusec" / "board" / "bin" / "nubl2.bin"
    cfg = _other(nubl2_key, tmp_path, token, root.root_cert, **{"  image: nubl2.bin ": f"  image: {raw} "})
    res = nubl2_key.run(nubl2_key.parse(cfg.read_text(), base_dir=tmp_path))
    assert ("PRIVATE_KEY", "nusec-nubl2") in token_objects(issuing)
    assert not any(o[1] == "nusec-nubl2" for o in token_objects(token))  # never on the root token
    ok = subprocess.run(
        [str(IMGTOOL), "verify", "-k", str(res.public_key), str(res.signed_image)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "Image was correctly validated" in ok.stdout, ok.stdout + ok.stderr
    pub = serialization.load_pem_public_key(res.public_key.read_bytes())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    xy = pub.public_numbers().x.to_bytes(32, "big") + pub.public_numbers().y.to_bytes(32, "big")
    parsed = mcuboot.verify(res.signed_image.read_bytes(), pub, require_keyhash=True)
    assert parsed.header.header_size == 0x400 and len(xy) == 64
    assert verify_transcript(res.transcript).kind == "nubl2-key"
    again = _other(
        nubl2_key,
        tmp_path,
        token,
        root.root_cert,
        **{"  image: nubl2.bin ": f"  image: {raw} ", "directory: nubl2-key-out": "directory: n2"},
    )
    with pytest.raises(CeremonyError, match="of the finished nubl2-key ceremony"):
        nubl2_key.run(nubl2_key.parse(again.read_text(), base_dir=tmp_path))
    assert not (tmp_path / "n2").exists()
    # a NuBL2 binary that is no Cortex-M image: refused, nothing published
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 64)
    bad = _other(
        nubl2_key,
        tmp_path,
        token,
        root.root_cert,
        **{
            "  image: nubl2.bin ": f"  image: {junk} ",
            "directory: nubl2-key-out": "directory: n3",
            "key_label: nusec-nubl2 ": "key_label: nusec-nubl2-b ",
        },
    )
    with pytest.raises(CeremonyError, match=r"nubl2\.image"):
        nubl2_key.run(nubl2_key.parse(bad.read_text(), base_dir=tmp_path))
    assert not (tmp_path / "n3" / "nubl2-signed.bin").exists()
