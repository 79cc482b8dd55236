"""``nusec otp build/verify/show`` as a user runs them: a real subprocess, a real SoftHSM2 token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pki.hsm.softhsm import SoftHsmToken
from tests.otp.conftest import SpecMaker

NUSEC = [sys.executable, "-c", "from nusec.cli import app; app()"]


def _run(args: list[str], token: SoftHsmToken, check_rc: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **token.environ()}
    res = subprocess.run([*NUSEC, *args], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == check_rc, res.stderr
    return res


def test_build_verify_show(make_spec: SpecMaker, token: SoftHsmToken, tmp_path: Path) -> None:
    spec = make_spec(count=40, chunk_size=8)
    out = tmp_path / "batch"
    res = _run(
        ["otp", "build", str(spec), "--out", str(out), "--jobs", "2", "--create-hsm-keys", "--json"], token
    )
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["count"] == 40 and summary["chunks_built"] == 5 and summary["sealed_now"]
    again = json.loads(
        _run(["otp", "build", str(spec), "--out", str(out), "--json"], token).stdout.splitlines()[-1]
    )
    assert (
        again["chunks_built"] == 0
        and not again["sealed_now"]
        and again["merkle_root"] == summary["merkle_root"]
    )

    seal = json.loads((out / "seal.json").read_text())
    (tmp_path / "signer.pem").write_text(seal["signer_pub"])
    v = json.loads(
        _run(
            [
                "otp",
                "verify",
                str(out),
                "--signer-pub",
                str(tmp_path / "signer.pem"),
                "--json",
                "--hsm-sample",
                "3",
                "--hsm-uri",
                f"pkcs11:token={token.label}",
            ],
            token,
        ).stdout.splitlines()[-1]
    )
    assert v["ok"] and v["count"] == 40 and v["signer_pinned"] and len(v["hsm_checked"]) == 3
    one = json.loads(
        _run(["otp", "verify", str(out), "--index", "39", "--json"], token).stdout.splitlines()[-1]
    )
    assert one["ok"] and one["index"] == 39

    show = json.loads(_run(["otp", "show", str(out), "--json"], token).stdout.splitlines()[-1])
    assert show["sealed"] and show["chunks_done"] == 5 and show["mode"] == "count"
    board = json.loads(
        _run(["otp", "show", str(out), "--index", "3", "--proof", "--json"], token).stdout.splitlines()[-1]
    )
    assert (
        board["digest_ok"] and board["entries"]["secure_boot_pub"] == "17-24" and board["proof"]["index"] == 3
    )
    human = _run(["otp", "show", str(out)], token).stdout
    assert "batch_id" in human and "kek_label" in human

    # damage: one flipped byte -> one clear error line, exit 1
    img = out / "images" / "000002.bin"
    data = bytearray(img.read_bytes())
    data[5000] ^= 0x04
    img.write_bytes(bytes(data))
    bad = _run(["otp", "verify", str(out), "--no-progress"], token, check_rc=1)
    assert bad.stderr.startswith("error: image 18: OTP image:") and len(bad.stderr.strip().splitlines()) == 1


def test_bad_spec_gives_one_line_error(
    make_spec: SpecMaker, token: SoftHsmToken, tmp_path: Path, ca_files: Path
) -> None:
    cases = {
        "exactly one of `count` or `uids`": make_spec(uids="u.txt"),
        "ica_cert is not issued": make_spec(ica_cert=str(ca_files / "stray.pem")),
        "chunk_size: must be a power of two": make_spec(chunk_size=3),
        "unknown field 'colour'": make_spec(colour="red"),
        "must not carry a PIN": make_spec(
            hsm={"uri": "pkcs11:token=x?pin-value=1234", "kek_label": "a", "signer_label": "b"}
        ),
    }
    for needle, spec in cases.items():
        res = _run(["otp", "build", str(spec), "--out", str(tmp_path / "never")], token, check_rc=1)
        assert needle in res.stderr and res.stderr.startswith("error: spec:"), res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert "1234" not in res.stderr
    assert not (tmp_path / "never").exists()


def test_killed_build_resumes_to_the_same_batch(
    make_spec: SpecMaker, token: SoftHsmToken, tmp_path: Path
) -> None:
    """SIGKILL the whole build (coordinator and workers) mid-run, resume, and compare with an
    uninterrupted build of the same batch.json."""
    import signal
    import time

    spec = make_spec(count=4000, chunk_size=16)
    out = tmp_path / "batch"
    env = {**os.environ, **token.environ()}
    cmd = [
        *NUSEC,
        "otp",
        "build",
        str(spec),
        "--out",
        str(out),
        "--jobs",
        "2",
        "--create-hsm-keys",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((out / "manifest").glob("*.jsonl"))) < 20:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
    finally:
        proc.wait(timeout=60)
    done = len(list((out / "manifest").glob("*.jsonl")))
    assert 20 <= done < 250 and not (out / "seal.json").exists()

    ref = tmp_path / "ref"
    (ref / "images").mkdir(parents=True)
    (ref / "manifest").mkdir()
    (ref / "batch.json").write_bytes((out / "batch.json").read_bytes())
    _run(["otp", "build", str(spec), "--out", str(ref), "--jobs", "1", "--json"], token)
    res = json.loads(
        _run(["otp", "build", str(spec), "--out", str(out), "--json"], token).stdout.splitlines()[-1]
    )
    assert res["chunks_skipped"] == done and res["chunks_built"] == 250 - done
    assert not list(out.rglob("*.part"))
    for sub in ("images", "manifest"):
        names = sorted(p.name for p in (ref / sub).iterdir())
        assert names == sorted(p.name for p in (out / sub).iterdir())
        for name in names:
            assert (out / sub / name).read_bytes() == (ref / sub / name).read_bytes(), f"{sub}/{name}"
    _run(["otp", "verify", str(out), "--no-progress"], token)


def test_template_validates_once_its_certificates_exist_and_validate_names_the_field(
    ca_files: Path, token: SoftHsmToken, tmp_path: Path
) -> None:
    """``nusec otp template`` writes the commented spec (never over a file); with root.pem and
    ica.pem beside it, ``nusec otp validate`` accepts it as-is; a typo is one line naming it."""
    for name in ("root.pem", "ica.pem"):
        (tmp_path / name).write_bytes((ca_files / name).read_bytes())
    spec = tmp_path / "spec.yaml"
    _run(["otp", "template", "-o", str(spec)], token)
    again = _run(["otp", "template", "-o", str(spec)], token, check_rc=1)
    assert again.stderr.strip() == f"error: {spec} already exists; refusing to overwrite it"
    summary = json.loads(_run(["otp", "validate", str(spec), "--json"], token).stdout.splitlines()[-1])
    assert summary["ok"] and summary["count"] == 10000 and summary["chunk_size"] == 1024
    assert summary["kek_label"] == "nusec-batch-kek" and not summary["uid_list"]
    assert _run(["otp", "template"], token).stdout == spec.read_text()

    spec.write_text(spec.read_text().replace("chunk_size: 1024", "chunk_sise: 1024"))
    bad = _run(["otp", "validate", str(spec), "--json"], token, check_rc=1)
    assert bad.stderr.strip() == f"error: spec: {spec}: unknown field 'chunk_sise'"
    assert json.loads(bad.stdout.splitlines()[-1]) == {"ok": False, "error": bad.stderr.strip()[7:]}
