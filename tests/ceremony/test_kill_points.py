"""Defects 1 and 3: kill the ceremony after every step and look for secrets where they must not be.

A real SIGKILL (``kill_driver.py``) after each step, then each re-run takes over with
``--reuse``. After every kill the whole SoftHSM2 token directory and the staging folder are
scanned for the backup KEKs (every run's, logged by the driver outside the scanned folders) and
for the CA private keys in clear (recovered at the end from the final run's wrapped keys with
``cryptography``'s RFC 5649 unwrap, an oracle independent of the HSM). The re-run that finds an
interrupted run's staging folder overwrites it in place (a hard link taken before shows zeros
afterwards) and records what it destroyed.

``NUSEC_KILL_POINTS=all`` (the default) kills at every point; a comma-separated list picks some.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from ceremony.transcript import verify_transcript
from pki.hsm.softhsm import SoftHsmDir
from tests.ceremony.conftest import issuing_token, token_objects, write_config

DRIVER = Path(__file__).with_name("kill_driver.py")
KILL_POINTS = [
    "open",
    "root_key",
    "root_cert",
    "ica_key",
    "ica_cert",
    "chain",
    "wrap:nusec-root-ca",  # the backup KEK exists in the root token's session right now
    "wrap:nusec-ica",
    "backup",
    "shares",  # shares and wrapped keys together in staging
    "close",  # closing line written, not published
]


def _selected() -> list[str]:
    chosen = os.environ.get("NUSEC_KILL_POINTS", "all")
    return KILL_POINTS if chosen == "all" else [p for p in KILL_POINTS if p in chosen.split(",")]


def _files(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _drive(cfg: Path, kill_at: str, kek_log: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DRIVER), str(cfg), kill_at, str(kek_log)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def _scalar_and_pkcs8(kek: bytes, wrapped: bytes) -> list[bytes]:
    padded = aes_key_unwrap_with_padding(kek, wrapped)
    pkcs8 = padded[: 2 + padded[1]]  # SoftHSM2 zero-pads the PKCS#8 (see pki.hsm.backend)
    key = serialization.load_der_private_key(pkcs8, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return [key.private_numbers().private_value.to_bytes(32, "big"), pkcs8]


def test_kill_after_every_step_leaves_no_kek_and_no_clear_key(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    token = softhsm.init_token("oem-root")
    issuing = issuing_token(token)
    cfg = write_config(tmp_path / "cfg", token)
    staging, final = tmp_path / "cfg" / ".out.partial", tmp_path / "cfg" / "out"
    kek_log = tmp_path / "keks.log"  # outside every scanned folder
    env = {**os.environ, "SOFTHSM2_CONF": str(token.conf_path)}
    snapshots: list[tuple[str, dict[str, bytes]]] = []
    links = tmp_path / "links"
    links.mkdir()
    for point in _selected():
        res = _drive(cfg, point, kek_log, env)
        assert res.returncode == -9, f"{point}: {res.stderr[-2000:]}"
        assert not final.exists(), point  # never published
        snapshots.append((point, {**_files(softhsm.token_dir), **_files(staging)}))
        for tok in (token, issuing):  # no KEK object survives the kill, on either token
            assert [o for o in token_objects(tok) if o[0] == "SECRET_KEY"] == [], point
        if point == "shares":  # hard links see what the next run does to the inodes
            for name in ("wrapped", "share"):
                src = staging / (
                    "root-ca.key.wrapped" if name == "wrapped" else "shares/01-carol-custodian.txt"
                )
                os.link(src, links / name)
            assert (links / "share").read_bytes().count(b" ") > 10  # words, before the wipe

    res = _drive(cfg, "never", kek_log, env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert final.is_dir() and not staging.exists()
    keks = [bytes.fromhex(line) for line in kek_log.read_text().split()]
    assert len(keks) == sum(p in KILL_POINTS[6:] for p in _selected()) + 1  # one KEK per backup step run
    clear = _scalar_and_pkcs8(keks[-1], (final / "root-ca.key.wrapped").read_bytes())
    clear += _scalar_and_pkcs8(keks[-1], (final / "ica.key.wrapped").read_bytes())
    needles = [*keks, *(k.hex().encode() for k in keks), *clear]
    snapshots.append(("finished", {**_files(softhsm.token_dir), **_files(final)}))
    for point, files in snapshots:
        for path, data in files.items():
            for needle in needles:
                assert needle not in data, f"after kill at {point}: secret bytes in {path}"

    # The re-run that found the last interrupted run's staging folder wiped it and recorded it.
    first = json.loads((final / "transcript.jsonl").read_text().splitlines()[0])["data"]
    destroyed = first["stale_staging_destroyed"]
    if "shares" in _selected() or "close" in _selected():
        names = {f["file"] for f in destroyed["files"]}
        assert {"root-ca.key.wrapped", "ica.key.wrapped", "transcript.jsonl"} <= names
        assert destroyed["backups"] and all(len(b["kek_check"]) == 16 for b in destroyed["backups"])
    if "shares" in _selected():
        for name in ("wrapped", "share"):
            data = (links / name).read_bytes()
            assert data and data == bytes(len(data)), name  # overwritten in place, then unlinked
    assert verify_transcript(final / "transcript.jsonl", root_cert=final / "root-ca.pem").steps[-1] == "close"
    if set(_selected()) - {"open"}:  # a key existed before the last run: it was taken back
        assert json.loads((final / "transcript.jsonl").read_text().splitlines()[1])["data"]["reused"] is True


def test_kek_is_gone_with_the_killed_process(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    """The issue's attack, after a kill right after the wrap: no KEK is left on the token to wrap
    the root key under with the user PIN alone (before, it stayed as a public token object)."""
    token = softhsm.init_token("oem-root")
    cfg = write_config(tmp_path / "cfg", token)
    env = {**os.environ, "SOFTHSM2_CONF": str(token.conf_path)}
    assert _drive(cfg, "wrap:nusec-root-ca", tmp_path / "keks.log", env).returncode == -9
    with token.open_backend(with_so_pin=False) as backend:
        assert backend.find_secret_key("nusec-ceremony-kek") is None
        assert [r["class"] for r in backend.inventory() if r["class"] == "SECRET_KEY"] == []


def test_abort_wipes_shares_and_wrapped_keys_in_place(softhsm: SoftHsmDir, tmp_path: Path) -> None:
    """Defect 3, aborted (not killed) run: the staging folder held the shares and the wrapped keys
    together; an abort overwrites them before unlinking (a hard link taken before sees zeros)."""
    import pytest

    from ceremony.config import load_config
    from ceremony.run import run_ceremony
    from ceremony.transcript import TranscriptWriter

    token = softhsm.init_token("oem-root")
    loaded = load_config(write_config(tmp_path / "cfg", token))
    staging = tmp_path / "cfg" / ".out.partial"
    links = {
        name: tmp_path / f"link-{n}"
        for n, name in enumerate(["shares/02-dave-custodian.txt", "ica.key.wrapped"])
    }

    def abort(self: TranscriptWriter, *_a: object, **_k: object) -> str:
        for name, link in links.items():
            os.link(staging / name, link)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TranscriptWriter, "close", abort)
        with pytest.raises(KeyboardInterrupt):
            run_ceremony(loaded)
    assert not staging.exists() and not (tmp_path / "cfg" / "out").exists()
    for link in links.values():
        data = link.read_bytes()
        assert len(data) > 40 and data == bytes(len(data)), link
