"""The whole ceremony against SoftHSM2: CLI rehearsal, real token, restore, interruption, bad input.

Oracles: the OpenSSL CLI (chain and signature checks), pkilint's own CLI, python-pkcs11 read
directly (object counts on the token), ``cryptography`` for signature checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.backup import split_kek
from ceremony.config import load_config
from ceremony.errors import BackupError, ConfigError, KeyExistsError, OutputExistsError, RestoreError
from ceremony.restore import restore_keys
from ceremony.run import run_ceremony
from ceremony.transcript import verify_transcript
from pki.errors import PinIncorrectError, TokenNotFoundError
from pki.hsm.softhsm import SoftHsmDir, SoftHsmToken
from tests.ceremony.conftest import (
    BIN,
    ca_key_attributes,
    config_text,
    issuing_token,
    nusec,
    token_objects,
    write_config,
    write_pins,
)

#: What SoftHSM2 itself says about a CA key after the ceremony (and after restore).
CA_KEY_ATTRS = {
    "token": True,
    "sensitive": True,
    "extractable": True,
    "wrap_with_trusted": True,
    "modifiable": False,
    "untrusted_kek_can_wrap": False,
    "value_readable": False,
}
ROOT_LABELS = [("PRIVATE_KEY", "nusec-root-ca")]
ICA_LABELS = [("PRIVATE_KEY", "nusec-ica")]


def _private_keys(objs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [o for o in objs if o[0] in ("PRIVATE_KEY", "SECRET_KEY")]


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, check=False)


def test_rehearsal_through_the_cli_end_to_end(tmp_path: Path) -> None:
    """template -> run --rehearsal --json -> openssl verify -> pkilint -> verify -> tamper detected."""
    res = nusec("ceremony", "template")
    assert res.returncode == 0
    (tmp_path / "ceremony.yaml").write_text(res.stdout)
    assert nusec("ceremony", "validate", str(tmp_path / "ceremony.yaml")).returncode == 0

    reh = tmp_path / "rehearsal"
    res = nusec(
        "ceremony",
        "run",
        str(tmp_path / "ceremony.yaml"),
        "--rehearsal",
        "--rehearsal-dir",
        str(reh),
        "--json",
        env={"SOFTHSM2_CONF": str(tmp_path / "none.conf")},
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["ok"] and out["rehearsal"]
    root, ica, chain = Path(out["root_cert"]), Path(out["ica_cert"]), Path(out["chain"])
    assert root.parent == reh / "ceremony-out"
    assert not (tmp_path / "ceremony-out").exists()  # the real outputs folder is untouched

    ok = _openssl("verify", "-CAfile", str(root), str(ica))
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    assert _openssl("verify", "-CAfile", str(root), "-untrusted", str(chain), str(ica)).returncode == 0
    lint = shutil.which("lint_pkix_cert", path=str(BIN.parent))
    assert lint is not None
    for cert in (root, ica):
        res_lint = subprocess.run(
            [lint, "lint", "-s", "ERROR", str(cert)], capture_output=True, text=True, check=False
        )
        assert res_lint.returncode == 0, res_lint.stdout
    ext = _openssl("x509", "-in", str(root), "-noout", "-ext", "basicConstraints,keyUsage").stdout
    assert "CA:TRUE, pathlen:1" in ext and "Certificate Sign" in ext
    ext = _openssl("x509", "-in", str(ica), "-noout", "-ext", "basicConstraints").stdout
    assert "CA:TRUE, pathlen:0" in ext

    transcript = Path(out["transcript"])
    res = nusec("ceremony", "verify", str(transcript), "--root-cert", str(root), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["steps"][0] == "open" and report["steps"][-1] == "close" and report["rehearsal"] is True
    assert len(report["outputs_checked"]) == 5

    # Restore through the CLI into another throwaway token: 2 shares work, 1 share does not.
    shares = sorted((reh / "ceremony-out" / "shares").iterdir())
    args = ["ceremony", "restore", str(tmp_path / "ceremony.yaml"), "--from", str(root.parent), "--rehearsal"]
    res = nusec(*args, "--share", str(shares[2]), "--output", str(tmp_path / "r1"), "--json")
    assert res.returncode == 1 and res.stderr.splitlines()[-1] == "error: need 2 shares, got 1"
    assert res.stderr.count("error") == 1 and json.loads(res.stdout)["ok"] is False
    assert not (tmp_path / "r1").exists()
    res = nusec(*args, "--share", str(shares[2]), "--share", str(shares[0]), "--output", str(tmp_path / "r2"))
    assert res.returncode == 0, res.stderr
    res = nusec(
        "ceremony", "verify", str(tmp_path / "r2" / "restore-transcript.jsonl"), "--root-cert", str(root)
    )
    assert res.returncode == 0 and "ok: restore transcript (REHEARSAL)" in res.stdout

    # A tampered middle line: one-line error, exit 1.
    lines = transcript.read_bytes().splitlines()
    lines[3] = lines[3].replace(b'"operator":"Alice Operator"', b'"operator":"Mallory"')
    transcript.write_bytes(b"\n".join(lines) + b"\n")
    res = nusec("ceremony", "verify", str(transcript))
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: {transcript}: hash chain broken at line 5 (line 4 was changed)"


def _restore_config(folder: Path, root: SoftHsmToken, issuing: SoftHsmToken, **kw: object) -> Path:
    """A restore config in ``folder`` naming fresh root and issuing target tokens."""
    write_pins(root, folder)
    write_pins(issuing, folder, "issuing-")
    path = folder / f"restore-{root.label}.yaml"
    path.write_text(config_text(root.label, issuing_label=issuing.label, **kw))  # type: ignore[arg-type]
    return path


def test_real_token_ceremony_then_restore_from_m_shares(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    token = softhsm.init_token("oem-root")
    cfg_path = write_config(tmp_path / "cfg", token)
    issuing = issuing_token(token)
    loaded = load_config(cfg_path)
    result = run_ceremony(loaded)
    assert result.output_dir == tmp_path / "cfg" / "out" and not result.rehearsal
    # Separate tokens: the root key only on the root token, the ICA key only on the issuing token.
    assert _private_keys(token_objects(token)) == ROOT_LABELS  # KEK gone, nothing else left
    assert _private_keys(token_objects(issuing)) == ICA_LABELS
    assert ca_key_attributes(token, "nusec-root-ca") == CA_KEY_ATTRS
    assert ca_key_attributes(issuing, "nusec-ica") == CA_KEY_ATTRS
    assert verify_transcript(result.transcript, root_cert=result.root_cert).kind == "ceremony"
    assert [p.name for p in result.share_files] == [
        "01-carol-custodian.txt",
        "02-dave-custodian.txt",
        "03-erin-custodian.txt",
    ]
    assert all(p.stat().st_mode & 0o077 == 0 for p in result.share_files)
    # Nothing secret in the transcript: no share words, no PIN.
    text = result.transcript.read_text()
    assert token.pin not in text and token.so_pin not in text and issuing.pin not in text
    words = result.share_files[0].read_text().splitlines()[-1]
    assert words not in text and words.split()[3] + " " + words.split()[4] not in text

    # Restore into fresh tokens from shares 1 and 3 (M = 2).
    fresh, fresh_iss = softhsm.init_token("oem-restore"), softhsm.init_token("oem-restore-iss")
    restore_cfg = _restore_config(tmp_path / "cfg", fresh, fresh_iss)
    restored = restore_keys(
        load_config(restore_cfg),
        result.output_dir,
        [result.share_files[0], result.share_files[2]],
        tmp_path / "restore-out",
    )
    assert _private_keys(token_objects(fresh)) == ROOT_LABELS
    assert _private_keys(token_objects(fresh_iss)) == ICA_LABELS
    restored_attrs = ca_key_attributes(fresh, "nusec-root-ca")
    assert restored_attrs == CA_KEY_ATTRS  # restored with the same policy
    report = verify_transcript(restored.transcript, root_cert=result.root_cert)
    assert report.kind == "restore" and report.steps[-1] == "close"
    unwrap = [json.loads(x) for x in restored.transcript.read_text().splitlines()][2]["data"]
    assert unwrap["root"]["attributes_read"]["MODIFIABLE"] is False  # as read, after the unwrap
    assert unwrap["root"]["attributes_read"]["COPYABLE"] is True  # SoftHSM2 2.6.1 (docs: Limits)
    from pki.hsm.roles import root_keys_on_token

    with fresh.open_backend(with_so_pin=False) as restored_root:
        assert root_keys_on_token(restored_root) == ["nusec-root-ca"]  # `nusec serve` refuses it

    # The restored root key signs; the root certificate's public key (and OpenSSL) verify it.
    from pki.hsm.pkcs11 import Pkcs11Backend

    message = b"signed by the restored root key"
    with fresh.open_backend(with_so_pin=False) as backend:
        assert isinstance(backend, Pkcs11Backend)
        signature = backend.sign_digest("nusec-root-ca", hashlib.sha256(message).digest())
    root_cert = x509.load_pem_x509_certificate(result.root_cert.read_bytes())
    pub = root_cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature)
    (tmp_path / "pub.pem").write_text(
        _openssl("x509", "-in", str(result.root_cert), "-pubkey", "-noout").stdout
    )
    ok = _openssl(
        "dgst",
        "-sha256",
        "-verify",
        str(tmp_path / "pub.pem"),
        "-signature",
        str(tmp_path / "sig"),
        str(tmp_path / "msg"),
    )
    assert ok.returncode == 0 and "Verified OK" in ok.stdout

    # M-1 shares: refused before any HSM action; nothing written, the tokens stay empty.
    third, third_iss = softhsm.init_token("oem-restore-2"), softhsm.init_token("oem-restore-2-iss")
    restore_cfg = _restore_config(tmp_path / "cfg", third, third_iss)
    with pytest.raises(BackupError, match="need 2 shares, got 1"):
        restore_keys(load_config(restore_cfg), result.output_dir, [result.share_files[1]], tmp_path / "r2")
    assert not (tmp_path / "r2").exists()
    assert _private_keys(token_objects(third)) == []
    # A valid SLIP-39 share from some other split is named, not silently combined.
    foreign = tmp_path / "foreign.txt"
    foreign.write_text(split_kek(secrets.token_bytes(32), ["x", "y", "z"], 2)[0].mnemonic + "\n")
    with pytest.raises(RestoreError, match=r"foreign\.txt is not one of this ceremony's shares"):
        restore_keys(
            load_config(restore_cfg), result.output_dir, [result.share_files[0], foreign], tmp_path / "r2"
        )
    assert _private_keys(token_objects(third)) == []
    # Restoring again into tokens that already hold the keys is refused.
    restore_cfg = _restore_config(tmp_path / "cfg", fresh, fresh_iss)
    with pytest.raises(KeyExistsError, match="restore needs a fresh token"):
        restore_keys(
            load_config(restore_cfg), result.output_dir, list(result.share_files[:2]), tmp_path / "r3"
        )
    assert not (tmp_path / "r3").exists()


def test_mistyped_share_word_is_reported_before_membership(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    """Defect 6: a mistyped word was reported as "not one of this ceremony's shares"."""
    token = softhsm.init_token("oem-root")
    result = run_ceremony(load_config(write_config(tmp_path, token)))
    target, target_iss = softhsm.init_token("oem-r"), softhsm.init_token("oem-r-iss")
    restore_cfg = load_config(_restore_config(tmp_path, target, target_iss))
    words = result.share_files[1].read_text().splitlines()[-1].split()
    swapped = tmp_path / "swapped.txt"  # two words exchanged: every word valid, checksum fails
    swapped.write_text(" ".join([*words[:5], words[6], words[5], *words[7:]]) + "\n")
    with pytest.raises(BackupError, match=r"swapped\.txt: the SLIP-39 checksum check fails"):
        restore_keys(restore_cfg, result.output_dir, [result.share_files[0], swapped], tmp_path / "r")
    typo = tmp_path / "typo.txt"
    typo.write_text(" ".join([*words[:4], words[4] + "x", *words[5:]]) + "\n")
    with pytest.raises(BackupError, match=r"typo\.txt: word 5 .* is not a SLIP-39 word"):
        restore_keys(restore_cfg, result.output_dir, [result.share_files[0], typo], tmp_path / "r")
    assert _private_keys(token_objects(target)) == [] and not (tmp_path / "r").exists()


def test_passphrase_protected_shares(
    softhsm: SoftHsmDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = softhsm.init_token("oem-root")
    monkeypatch.setenv("SHARE_PASS", "correct horse battery")
    passphrase = {"# passphrase: {env: NUSEC_SHARE_PASSPHRASE}": "passphrase: {env: SHARE_PASS}"}
    cfg = write_config(tmp_path, token, extra=passphrase)
    result = run_ceremony(load_config(cfg))
    fresh, fresh_iss = softhsm.init_token("oem-restore"), softhsm.init_token("oem-restore-iss")
    restore_cfg = _restore_config(tmp_path, fresh, fresh_iss, extra=passphrase)
    monkeypatch.setenv("SHARE_PASS", "wrong")
    with pytest.raises(RestoreError, match="do not rebuild this ceremony's KEK"):
        restore_keys(
            load_config(restore_cfg), result.output_dir, list(result.share_files[1:]), tmp_path / "r"
        )
    assert not (tmp_path / "r").exists() and _private_keys(token_objects(fresh)) == []
    monkeypatch.setenv("SHARE_PASS", "correct horse battery")
    restore_keys(load_config(restore_cfg), result.output_dir, list(result.share_files[1:]), tmp_path / "r")
    assert _private_keys(token_objects(fresh)) == ROOT_LABELS
    assert _private_keys(token_objects(fresh_iss)) == ICA_LABELS


def test_interrupted_run_is_rerun_with_reuse_without_duplicate_keys(
    softhsm: SoftHsmDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = softhsm.init_token("oem-root")
    issuing = issuing_token(token)
    loaded = load_config(write_config(tmp_path, token))
    out_dir = loaded.config.outputs.directory

    import ceremony.run as run_mod

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt  # the operator's Ctrl-C (or a power cut) during step 4

    monkeypatch.setattr(run_mod, "issue_ica_certificate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_ceremony(loaded)
    monkeypatch.undo()
    assert not out_dir.exists() and not (tmp_path / ".out.partial").exists()  # nothing half-written
    assert _private_keys(token_objects(token)) == ROOT_LABELS  # keys made before the interruption
    assert _private_keys(token_objects(issuing)) == ICA_LABELS

    with pytest.raises(KeyExistsError, match=r"already exists on its token.*--reuse"):
        run_ceremony(loaded)
    assert not out_dir.exists()
    # A token object under the KEK label (not ours: our KEKs are session objects) is destroyed.
    with token.open_backend() as backend:
        backend.generate_aes_kek("nusec-ceremony-kek", persistent=True)
    assert ("SECRET_KEY", "nusec-ceremony-kek") in token_objects(token)

    result = run_ceremony(loaded, reuse=True)
    assert set(result.reused_keys) == {"nusec-root-ca", "nusec-ica"}
    assert _private_keys(token_objects(token)) == ROOT_LABELS  # still one of each, no KEK left
    assert _private_keys(token_objects(issuing)) == ICA_LABELS
    report = verify_transcript(result.transcript)
    first = json.loads(result.transcript.read_text().splitlines()[0])
    assert first["data"]["existing_keys"] == ["nusec-root-ca", "nusec-ica"]
    assert first["data"]["stale_kek_destroyed_on"] == ["oem-root"]
    assert report.steps[-1] == "close"
    assert not (tmp_path / ".out.journal.json").exists()  # a finished run leaves no journal


def test_killed_cli_run_leaves_nothing_published_and_reruns_with_reuse(
    softhsm: SoftHsmDir, tmp_path: Path
) -> None:
    """SIGKILL while the first custodian reads a printed share (deterministic: the CLI waits for
    Enter on its terminal), then re-run: refused without --reuse, complete with it."""
    token = softhsm.init_token("oem-root")
    cfg = write_config(tmp_path, token, extra={"delivery: files": "delivery: print"})
    env = {"SOFTHSM2_CONF": str(token.conf_path)}
    controller, terminal = pty.openpty()  # stdin is a terminal, so the CLI pauses per share
    proc = subprocess.Popen(
        [str(BIN), "ceremony", "run", str(cfg)],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("=== share 1 of 3 for Carol Custodian"):
                break
        assert proc.poll() is None  # waiting for Enter, after step 6 (keys made, KEK destroyed)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out").exists()
    assert (tmp_path / ".out.partial" / "transcript.jsonl").exists()  # stale staging, never published
    assert _private_keys(token_objects(token)) == ROOT_LABELS

    res = nusec("ceremony", "run", str(cfg), env=env)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "--reuse" in res.stderr
    res = nusec("ceremony", "run", str(cfg), "--reuse", "--json", env=env)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(summary["reused_keys"]) == ["nusec-ica", "nusec-root-ca"]
    assert not (tmp_path / ".out.partial").exists()
    assert _private_keys(token_objects(token)) == ROOT_LABELS  # one of each, no KEK left
    first = json.loads((tmp_path / "out" / "transcript.jsonl").read_text().splitlines()[0])
    destroyed = first["data"]["stale_staging_destroyed"]
    assert "transcript.jsonl" in [f["file"] for f in destroyed["files"]]
    assert len(destroyed["backups"]) == 1 and len(destroyed["backups"][0]["share_sha256"]) == 3
    assert nusec("ceremony", "verify", str(tmp_path / "out" / "transcript.jsonl")).returncode == 0


def test_wrong_pin_is_one_line_and_writes_nothing(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    token = softhsm.init_token("oem-root")
    cfg = write_config(tmp_path, token)
    (tmp_path / "user.pin").write_text("not-the-pin\n")
    res = nusec("ceremony", "run", str(cfg), env={"SOFTHSM2_CONF": str(token.conf_path)})
    assert res.returncode == 1
    assert res.stderr == "error: logging in to token 'oem-root': the token refused the PIN\n"
    assert "not-the-pin" not in res.stderr + res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ceremony.yaml",
        "hsm",
        "issuing-so.pin",
        "issuing-user.pin",
        "so.pin",
        "user.pin",
    ]


def test_wrong_so_pin_stops_before_any_key_is_made(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    token = softhsm.init_token("oem-root")
    cfg = write_config(tmp_path, token)
    (tmp_path / "so.pin").write_text("wrong-so-pin\n")
    with pytest.raises(PinIncorrectError):
        run_ceremony(load_config(cfg))
    assert token_objects(token) == []
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


def test_missing_token_and_existing_outputs_are_refused_up_front(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    token = softhsm.init_token("oem-root")
    cfg = write_config(tmp_path / "a", token)
    cfg.write_text(cfg.read_text().replace("token_label: oem-root", "token_label: no-such-token"))
    with pytest.raises(TokenNotFoundError, match="no PKCS#11 token labelled 'no-such-token'"):
        run_ceremony(load_config(cfg))

    cfg = write_config(tmp_path / "b", token)
    # A second run while one is running in the same folder (simulated by holding its lock).
    import fcntl
    import os

    fd = os.open(tmp_path / "b", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(OutputExistsError, match="another ceremony is running"):
            run_ceremony(load_config(cfg))
    finally:
        os.close(fd)
    (tmp_path / "b" / "out").mkdir()
    with pytest.raises(OutputExistsError, match="already exists; refusing to overwrite"):
        run_ceremony(load_config(cfg))
    assert token_objects(token) == []  # refused before any HSM action


def test_malformed_and_unknown_field_yaml_via_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nceremony: {name: x\n")
    res = nusec("ceremony", "run", str(bad))
    assert res.returncode == 1 and res.stderr.startswith(f"error: {bad}: malformed YAML at line")
    assert res.stderr.count("\n") == 1
    bad.write_text(config_text("t").replace("threshold: 2", "threshold: 2\n  thresold: 3"))
    res = nusec("ceremony", "validate", str(bad), "--json")
    assert res.returncode == 1
    assert res.stderr == f"error: {bad}: unknown field 'thresold' in 'backup'\n"
    assert json.loads(res.stdout) == {"ok": False, "error": f"{bad}: unknown field 'thresold' in 'backup'"}


def test_print_delivery_shows_each_share_once(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    token = softhsm.init_token("oem-root")
    cfg = write_config(tmp_path, token, extra={"delivery: files": "delivery: print"})
    shown: list[tuple[str, str]] = []
    result = run_ceremony(
        load_config(cfg), show_share=lambda s, total, m, check: shown.append((s.custodian, s.mnemonic))
    )
    assert [name for name, _ in shown] == ["Carol Custodian", "Dave Custodian", "Erin Custodian"]
    assert result.share_files == () and not (result.output_dir / "shares").exists()
    for path in tmp_path.joinpath("out").iterdir():
        assert shown[0][1] not in path.read_text(errors="replace")
    with pytest.raises(ConfigError, match="delivery is 'print'"):
        run_ceremony(
            load_config(cfg.with_name("ceremony.yaml")), rehearsal=True, rehearsal_dir=tmp_path / "r"
        )
