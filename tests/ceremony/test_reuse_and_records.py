"""Defects 2, 4, 5 and the transcript's content: --reuse adopts only its own run's keys, a finished
ceremony is refused, the root key stays off the service's token, attributes are recorded as read.

Oracles: python-pkcs11 read directly (``ca_key_attributes``), the SoftHSM2 token itself, the
installed CLI as a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, ObjectClass

import ceremony.run as run_mod
from ceremony.config import LoadedConfig, load_config
from ceremony.errors import FinishedCeremonyError, KeyExistsError, ReuseRefusedError
from ceremony.journal import Journal, journal_path
from ceremony.run import run_ceremony
from ceremony.transcript import spki_sha256
from pki.hsm.pkcs11 import _P256_PARAMS
from pki.hsm.softhsm import SoftHsmDir, SoftHsmToken
from tests.ceremony.conftest import issuing_token, nusec, token_objects, write_config


def _interrupt_at_root_cert(loaded: LoadedConfig) -> None:
    """A run interrupted (Ctrl-C) after the root key was made."""

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_mod, "create_root_certificate", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_ceremony(loaded)


def _plant_known_key(token: SoftHsmToken, label: str) -> ec.EllipticCurvePrivateKey:
    """The issue's attack: an imported, non-sensitive key of known value under the CA label
    (LOCAL false, SENSITIVE false, WRAP_WITH_TRUSTED false), with its public half."""
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    os.environ["SOFTHSM2_CONF"] = str(token.conf_path)
    lib = pkcs11.lib(token.module_path)
    lib.reinitialize()
    with lib.get_token(token_label=token.label).open(rw=True, user_pin=token.pin) as session:
        common = {
            Attribute.KEY_TYPE: KeyType.EC,
            Attribute.TOKEN: True,
            Attribute.LABEL: label,
            Attribute.ID: b"\x01",
        }
        session.create_object(
            {
                **common,
                Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
                Attribute.SIGN: True,
                Attribute.EC_PARAMS: _P256_PARAMS,
                Attribute.VALUE: key.private_numbers().private_value.to_bytes(32, "big"),
            }
        )
        session.create_object(
            {
                **common,
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.VERIFY: True,
                Attribute.EC_PARAMS: _P256_PARAMS,
                Attribute.EC_POINT: b"\x04\x41" + point,
            }
        )
    lib.reinitialize()
    return key


def test_reuse_refuses_a_planted_key_even_with_a_forged_journal(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    """Defect 2: --reuse published a planted, known-value key as the root."""
    token = softhsm.init_token("oem-root")
    loaded = load_config(write_config(tmp_path, token))
    planted = _plant_known_key(token, "nusec-root-ca")
    with pytest.raises(ReuseRefusedError) as err:
        run_ceremony(loaded, reuse=True)
    assert str(err.value) == (
        "key 'nusec-root-ca' on token 'oem-root' was not made by an interrupted run of this config"
        " (no journal entry); not reusing it"
    )
    # Someone also writes a journal naming the planted key: the attributes still give it away.
    journal, _ = Journal.resume_or_start(
        journal_path(loaded.config.outputs.directory), kind="ceremony", config_sha256=loaded.sha256
    )
    with token.open_backend() as backend:
        serial = backend.token_info()["token_serial"]
    journal.key_made(
        "nusec-root-ca",
        token_serial=serial,
        token_label="oem-root",
        spki_sha256=spki_sha256(planted.public_key()),
    )
    with pytest.raises(
        ReuseRefusedError, match=r"reads back with CKA_SENSITIVE=False \(policy needs True\); not reusing it"
    ):
        run_ceremony(loaded, reuse=True)
    res = nusec(
        "ceremony",
        "run",
        str(tmp_path / "ceremony.yaml"),
        "--reuse",
        env={"SOFTHSM2_CONF": str(token.conf_path)},
    )
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "not reusing it" in res.stderr
    assert not loaded.config.outputs.directory.exists()


def test_reuse_refuses_a_key_the_journal_does_not_name(
    softhsm: SoftHsmDir,
    tmp_path: Path,
) -> None:
    """A properly made key under the label, swapped in after the interruption: public key differs."""
    token = softhsm.init_token("oem-root")
    loaded = load_config(write_config(tmp_path, token))
    _interrupt_at_root_cert(loaded)
    from pki.hsm import KeyPolicy

    with token.open_backend() as backend:
        backend.destroy_keypair("nusec-root-ca")
        backend.generate_ec_keypair("nusec-root-ca", policy=KeyPolicy.ca_key())
    with pytest.raises(ReuseRefusedError, match="is not the key the interrupted run journaled"):
        run_ceremony(loaded, reuse=True)


def test_finished_ceremony_is_refused_not_resumed(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    """Defect 4: a new outputs folder on a token holding a finished ceremony was treated as an
    interrupted run, and --reuse issued a second root certificate and second shares."""
    token = softhsm.init_token("oem-root")
    first = run_ceremony(load_config(write_config(tmp_path / "a", token)))
    again = load_config(write_config(tmp_path / "b", token))  # same tokens, a new outputs folder
    for reuse in (False, True):
        with pytest.raises(FinishedCeremonyError) as err:
            run_ceremony(again, reuse=reuse)
        assert "holds key 'nusec-root-ca' of the finished ceremony ceremony" in str(err.value)
        assert "never re-run" in str(err.value)
    assert not (tmp_path / "b" / "out").exists()
    # Other labels on the same root token: still the token of a finished root ceremony.
    other = load_config(
        write_config(tmp_path / "c", token, extra={"key_label: nusec-root-ca": "key_label: root-2"})
    )
    with pytest.raises(FinishedCeremonyError, match="holds key 'nusec-root-ca' of the finished ceremony"):
        run_ceremony(other)
    # The record on each token is named after the finished transcript's closing line.
    closing = hashlib.sha256(first.transcript.read_bytes().splitlines()[-1]).hexdigest()
    record = ("DATA", f"nusec-ceremony-{closing[:16]}")
    assert [o for o in token_objects(token) if o[0] == "DATA"] == [record]
    assert [o for o in token_objects(issuing_token(token)) if o[0] == "DATA"] == [record]


def test_keys_exist_without_reuse_names_reuse(
    softhsm: SoftHsmDir,
    tmp_path: Path,
) -> None:
    token = softhsm.init_token("oem-root")
    loaded = load_config(write_config(tmp_path, token))
    _interrupt_at_root_cert(loaded)
    with pytest.raises(KeyExistsError, match="--reuse"):
        run_ceremony(loaded)
    assert run_ceremony(loaded, reuse=True).reused_keys == ("nusec-root-ca",)


def test_transcript_records_what_the_token_says(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    """Defect 6: attributes were a hard-coded string; lint "before" findings, token identity,
    object inventory, the config text and host/OS/tool versions were missing."""
    from tests.ceremony.conftest import ca_key_attributes

    token = softhsm.init_token("oem-root")
    cfg = write_config(tmp_path, token)
    result = run_ceremony(load_config(cfg))
    lines = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    by_step = {line["step"]: line["data"] for line in lines}
    opening = by_step["open"]
    assert opening["config_text"] == cfg.read_text()
    assert opening["tokens"]["root"]["token_model"] == "SoftHSM v2"
    assert opening["tokens"]["root"]["token_serial"] and opening["tokens"]["issuing"]["token_serial"]
    assert opening["tokens"]["root"]["library_manufacturer"] == "SoftHSM"
    assert opening["environment"]["versions"]["python-pkcs11"] and opening["environment"]["os"]
    assert opening["inventory"] == {"root": [], "issuing": []}
    direct = ca_key_attributes(token, "nusec-root-ca")
    read = by_step["root_key"]["attributes_read"]
    assert read["MODIFIABLE"] is direct["modifiable"] is False and read["COPYABLE"] is False
    assert read["WRAP_WITH_TRUSTED"] is direct["wrap_with_trusted"] is True
    assert read["LOCAL"] is True and read["ALWAYS_SENSITIVE"] is True
    assert (
        by_step["root_key"]["token_label"] == "oem-root"
        and by_step["ica_key"]["token_label"] == "oem-root-iss"
    )
    assert [(r["class"], r["label"]) for r in by_step["root_key"]["inventory"]] == [
        ("PRIVATE_KEY", "nusec-root-ca"),
        ("PUBLIC_KEY", "nusec-root-ca"),
    ]
    assert all(r["class"] != "SECRET_KEY" for r in by_step["backup"]["inventory"]["root"])
    for step in ("root_cert", "ica_cert"):
        lint = by_step[step]["lint"]
        assert isinstance(lint["before_signing"], list) and isinstance(lint["after_signing"], list)
    assert by_step["root_cert"]["not_before"] == f"{load_config(cfg).config.root.not_before}T00:00:00+00:00"
    assert (
        by_step["root_cert"]["spki_sha256"] == by_step["root_key"]["spki_sha256"] == result.root_spki_sha256
    )


def test_run_and_verify_print_the_same_fingerprints(tmp_path: Path) -> None:
    """Defect 6: run printed the certificate's SHA-256, verify the SPKI's."""
    (tmp_path / "c.yaml").write_text(nusec("ceremony", "template").stdout)
    res = nusec(
        "ceremony", "run", str(tmp_path / "c.yaml"), "--rehearsal", "--rehearsal-dir", str(tmp_path / "r")
    )
    assert res.returncode == 0, res.stderr
    run_fp = [line for line in res.stdout.splitlines() if "SHA-256" in line]
    transcript = tmp_path / "r" / "ceremony-out" / "transcript.jsonl"
    ver = nusec("ceremony", "verify", str(transcript))
    assert ver.returncode == 0, ver.stderr
    verify_fp = [line for line in ver.stdout.splitlines() if "SHA-256" in line]
    assert len(run_fp) == 2 and run_fp == verify_fp
    assert run_fp[0].startswith("root key SPKI SHA-256:") and run_fp[1].startswith(
        "root certificate SHA-256:"
    )


def test_serve_refuses_the_root_token_and_runs_on_the_issuing_token_only(
    softhsm: SoftHsmDir,
    tmp_path: Path,
) -> None:
    """Defect 5: README ran `nusec serve` on the ceremony's token, putting the root key online."""
    from pki.hsm.roles import RootKeyOnlineError, check_service_token, root_keys_on_token

    token = softhsm.init_token("oem-root")
    result = run_ceremony(load_config(write_config(tmp_path, token)))
    issuing = issuing_token(token)
    os.environ["SOFTHSM2_CONF"] = str(token.conf_path)
    pin_file = tmp_path / "user.pin"
    root_uri = f"pkcs11:token=oem-root;object=nusec-root-ca?pin-source=file:{pin_file}"
    with pytest.raises(RootKeyOnlineError, match="holds root key 'nusec-root-ca'"):
        check_service_token(root_uri, result.root_cert)
    check_service_token(
        f"pkcs11:token=oem-root-iss?pin-source=file:{tmp_path / 'issuing-user.pin'}", result.root_cert
    )
    with token.open_backend() as backend:  # recorded as a root key by the ceremony, even without the cert
        assert root_keys_on_token(backend) == ["nusec-root-ca"]
    with issuing.open_backend() as backend:
        assert root_keys_on_token(backend) == []
    res = nusec(
        "serve",
        "--hsm-uri",
        root_uri,
        "--root-cert",
        str(result.root_cert),
        "--ica-cert",
        str(result.ica_cert),
        "--insecure-dev",
        "--port",
        "0",
        env={"SOFTHSM2_CONF": str(token.conf_path)},
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "nusec serve: token 'oem-root' holds root key 'nusec-root-ca': the online service must use a token"
        " without the root key (the issuing token from the ceremony's issuing_hsm)"
    ]
