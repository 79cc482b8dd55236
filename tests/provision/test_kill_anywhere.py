"""Seeded kill-anywhere: ``nusec provision`` SIGKILLed at uniformly random moments across its steps,
each kill followed by a resume, until every board is finished; then every board must be right.

A real process and a real SIGKILL: whatever the simulator had not saved (its flash is written in
batches) is lost, as on a power cut. The kill moment is uniform over the step window of a clean
run (from the first journal line to the exit), measured first on a reference board.

``make test`` runs a few kills; ``NUSEC_KILL_ANYWHERE=100`` (and ``NUSEC_KILL_ANYWHERE_SEED``)
gives the full run; ``NUSEC_KILL_ANYWHERE_BUDGET_S`` bounds its time. It prints its figures.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from nucore import otp
from nusec.provision.client import TlsConfig
from nusec.provision.report import ProvisionResult, StepRecord
from nusim.board import board_uid
from nusim.boards import details
from pki.service.server import ServiceHandle
from tests.provision.conftest import FIRMWARE, BoardFile
from tests.provision.helpers import assert_provisioned, service_certificates
from tests.service.conftest import Pki

KILLS = int(os.environ.get("NUSEC_KILL_ANYWHERE", "3"))
SEED = int(os.environ.get("NUSEC_KILL_ANYWHERE_SEED", "20261204"))
BUDGET_S = float(os.environ.get("NUSEC_KILL_ANYWHERE_BUDGET_S", str(120 + 15 * KILLS)))
MAX_KILLS_PER_BOARD = 3
RUN_TIMEOUT_S = 120.0


def _cmd(service: ServiceHandle, pki: Pki, journal: Path, probe: str) -> list[str]:
    return [
        sys.executable, "-c", "from nusec.cli import app; app()", "provision", "--probe", probe,
        "--server", service.url, "--firmware", str(FIRMWARE), "--ca", str(pki.chain_pem),
        "--client-cert", str(pki.operator_cert), "--client-key", str(pki.operator_key),
        "--journal", str(journal), "--json",
    ]  # fmt: skip


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _running_step(journal_file: Path) -> str:
    """The step the journal shows started and not finished (where the kill landed)."""
    open_step = "preflight"
    try:
        lines = journal_file.read_bytes().splitlines()
    except FileNotFoundError:
        return open_step
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if rec.get("event") == "start":
            open_step = str(rec.get("step"))
        elif rec.get("event") == "done" and rec.get("step") == open_step:
            open_step = f"after {open_step}"
    return open_step


def _one_run(
    cmd: list[str], env: dict[str, str], journal_file: Path, kill_at: float | None
) -> tuple[bool, str, str]:
    """Start a run; SIGKILL it ``kill_at`` seconds after its first new journal line (None: let it
    finish). Returns (killed, where, stdout)."""
    start_size = _size(journal_file)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    marker: float | None = None
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        now = time.monotonic()
        if marker is None and _size(journal_file) > start_size:
            marker = now
        if kill_at is not None and marker is not None and now - marker >= kill_at:
            where = _running_step(journal_file)
            proc.send_signal(signal.SIGKILL)
            killed = True
            proc.wait(timeout=30)
            return killed, where, ""
        time.sleep(0.002)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
        raise AssertionError(f"a run took longer than {RUN_TIMEOUT_S:.0f} s")
    out = proc.stdout.read() if proc.stdout else ""
    return False, "", out


def _result(stdout: str) -> ProvisionResult:
    board = json.loads(stdout.strip().splitlines()[-1])["boards"][0]
    return ProvisionResult(**{**board, "steps": [StepRecord(**s) for s in board["steps"]]})


@pytest.mark.timeout(BUDGET_S + 600)  # the run is bounded by its own budget, not the suite default
def test_seeded_kill_anywhere(
    service: ServiceHandle, pki_files: Pki, tls: TlsConfig, sim_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    env = {**os.environ, "NUSEC_SIM_DIR": str(sim_dir), "NUSEC_SIM_FSYNC": "0"}
    journal = tmp_path / "j"
    t_start = time.monotonic()

    # the step window of an undisturbed run, from its first journal line to its exit
    ref_file = journal / board_uid("karef").hex().upper() / "journal.jsonl"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        _cmd(service, pki_files, journal, "sim:karef"), env=env, stdout=subprocess.PIPE, text=True
    )
    while _size(ref_file) == 0 and proc.poll() is None:
        time.sleep(0.002)
    t_mark = time.monotonic()
    out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    window = time.monotonic() - t_mark
    assert proc.returncode == 0 and _result(out).ok, out[-2000:]
    startup = t_mark - t0

    kills: Counter[str] = Counter()
    boards: list[str] = []
    finished_early = 0
    while sum(kills.values()) < KILLS and time.monotonic() - t_start < BUDGET_S:
        name = f"ka{len(boards)}"
        boards.append(name)
        jfile = journal / board_uid(name).hex().upper() / "journal.jsonl"
        cmd = _cmd(service, pki_files, journal, f"sim:{name}")
        stdout = ""
        for _ in range(MAX_KILLS_PER_BOARD):
            if sum(kills.values()) >= KILLS:
                break
            killed, where, stdout = _one_run(cmd, env, jfile, rng.uniform(0.0, window))
            if not killed:
                finished_early += 1  # the resume had less left to do than the drawn moment
                break
            kills[where] += 1
            stdout = ""
        if not stdout:  # the resume after the last kill, to the end
            killed, _, stdout = _one_run(cmd, env, jfile, None)
        res = _result(stdout)
        uid = res.uid or ""
        # the chain verifies (openssl), the firmware in flash is the signed image (imgtool), locked,
        # key confirmed with the service, every written OTP entry locked, no OTP word burned twice
        assert_provisioned(sim_dir, name, res, pki_files.root_pem, service.url, tls, tmp_path)
        assert service_certificates(pki_files.dir, uid) == 1, name  # one certificate per board
        board = details(name, sim_dir)
        assert board["next_boot"]["boots"] and board["last_boot"] is not None, name  # the firmware boots
        assert board["secure_boot_key"]
        with httpx.Client(base_url=service.url, verify=tls.ssl_context()) as c:  # one secure-boot key:
            sb = c.get(f"/v1/boards/{uid}/secure-boot-key").json()["public_xy_hex"]  # the service's is OTP's
        assert bytes.fromhex(sb) == otp.parse(BoardFile.load(sim_dir, name).otp).secure_boot_pub
        assert (
            board["program_counts"]["max_per_word"] == 1 and board["program_counts"]["max_per_lock_word"] == 1
        )

    total = sum(kills.values())
    figures = {
        "seed": SEED,
        "kills": total,
        "boards": len(boards),
        "finished_before_the_drawn_moment": finished_early,
        "step_window_s": round(window, 2),
        "startup_s": round(startup, 2),
        "seconds": round(time.monotonic() - t_start, 1),
        "kills_by_step": dict(sorted(kills.items())),
    }
    print(f"\nkill-anywhere: {json.dumps(figures)}")
    assert total >= KILLS, f"only {total} kills within the {BUDGET_S:.0f} s budget: {figures}"
