"""``nusec provision`` / ``nusec inspect`` as an operator runs them: a separate process, exit
codes, the --json last line, --dry-run changing nothing, and a real process kill (SIGKILL) in
the middle of a run followed by a resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from nusec.provision.client import TlsConfig
from pki.service.server import ServiceHandle
from tests.provision.conftest import FIRMWARE, BoardFile
from tests.provision.helpers import assert_provisioned
from tests.service.conftest import Pki


def _args(service: ServiceHandle, pki: Pki, journal: Path, *probes: str) -> list[str]:
    out = ["provision"]
    for p in probes:
        out += ["--probe", p]
    out += ["--server", service.url, "--firmware", str(FIRMWARE), "--ca", str(pki.chain_pem)]
    out += ["--client-cert", str(pki.operator_cert), "--client-key", str(pki.operator_key)]
    return [*out, "--journal", str(journal)]


def _env(sim_dir: Path) -> dict[str, str]:
    return {**os.environ, "NUSEC_SIM_DIR": str(sim_dir)}


def _nusec(args: list[str], sim_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    code = "from nusec.cli import app; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=_env(sim_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_usage_error_exits_2(service: ServiceHandle, pki_files: Pki, sim_dir: Path, tmp_path: Path) -> None:
    args = _args(service, pki_files, tmp_path / "j", "sim:u1")
    args[args.index("--firmware") + 1] = str(tmp_path / "missing.bin")
    out = _nusec(args, sim_dir)
    assert out.returncode == 2
    assert "missing.bin does not exist" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (sim_dir / "u1.json").exists()


def test_dry_run_changes_nothing(
    service: ServiceHandle, pki_files: Pki, tls: TlsConfig, sim_dir: Path, tmp_path: Path
) -> None:
    out = _nusec([*_args(service, pki_files, tmp_path / "j", "sim:d1"), "--dry-run", "--json"], sim_dir)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    board = summary["boards"][0]
    steps = {s["id"]: s for s in board["steps"]}
    assert all(s["status"] == "planned" for s in steps.values())
    assert "program 143 words and lock 116 entries" in steps["otp_ca"]["detail"]
    state = BoardFile.load(sim_dir, "d1")
    assert state.otp == b"\xff" * 2048 and state.locked_entries() == []
    with httpx.Client(base_url=service.url, verify=tls.ssl_context()) as c:
        assert c.get(f"/v1/boards/{board['uid']}").status_code == 404  # not even registered


def test_process_kill_then_resume(
    service: ServiceHandle, pki_files: Pki, tls: TlsConfig, sim_dir: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "j"
    args = _args(service, pki_files, journal, "sim:pk1")
    code = "from nusec.cli import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--json"],
        env=_env(sim_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    killed_in = None
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list(journal.glob("*/journal.jsonl"))
        if logs:
            lines = [json.loads(x) for x in logs[0].read_text().splitlines() if x.strip()]
            started = [r["step"] for r in lines if r["event"] == "start"]
            if "otp_cert" in started:
                proc.send_signal(signal.SIGKILL)
                killed_in = started[-1]
                break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert killed_in is not None, "the run finished before it could be killed"
    out = _nusec([*args, "--json"], sim_dir)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    board = json.loads(out.stdout.strip().splitlines()[-1])["boards"][0]
    from nusec.provision.report import ProvisionResult, StepRecord

    res = ProvisionResult(**{**board, "steps": [StepRecord(**s) for s in board["steps"]]})
    assert_provisioned(sim_dir, "pk1", res, pki_files.root_pem, service.url, tls, tmp_path)
    inspect = _nusec(
        [
            "inspect",
            "--probe",
            "sim:pk1",
            "--ca",
            str(pki_files.chain_pem),
            "--journal",
            str(journal),
            "--json",
        ],
        sim_dir,
    )
    assert inspect.returncode == 0, inspect.stdout + inspect.stderr
    assert json.loads(inspect.stdout.strip().splitlines()[-1])["boards"][0]["locked"] is True


def test_batch_mode_without_a_sealed_batch_is_refused_before_anything_is_written(
    service: ServiceHandle, pki_files: Pki, sim_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "batch").mkdir()  # not a batch folder (no batch.json)
    args = [
        *_args(service, pki_files, tmp_path / "j", "sim:bm1"),
        "--mode",
        "batch",
        "--batch",
        str(tmp_path / "batch"),
    ]
    out = _nusec(args, sim_dir)
    assert out.returncode == 2 and "not a batch folder" in out.stderr, out.stderr
    assert not (sim_dir / "bm1.json").exists()


def test_table_output_names_every_board(
    service: ServiceHandle, pki_files: Pki, sim_dir: Path, tmp_path: Path
) -> None:
    out = _nusec([*_args(service, pki_files, tmp_path / "j", "sim:t1", "sim:t2"), "--dry-run"], sim_dir)
    assert out.returncode == 0, out.stderr
    assert "nusec provision" in out.stdout and "sim:t1" in out.stdout and "sim:t2" in out.stdout
    assert "would" in out.stderr and "IRREVERSIBLE" in out.stderr  # the plan, per step, on the console
