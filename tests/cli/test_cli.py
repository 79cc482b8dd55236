"""The installed ``nusec`` entry point: help teaches, doctor checks, errors exit non-zero."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "nusec"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120, check=False)


def test_help_lists_commands() -> None:
    res = run("--help")
    assert res.returncode == 0, res.stderr
    assert "doctor" in res.stdout
    assert "Nu-Link3" in res.stdout


def test_unknown_command_fails() -> None:
    res = run("no-such-command")
    assert res.returncode == 2 and "No such command 'no-such-command'" in res.stderr, res.stderr


def test_doctor_json() -> None:
    res = run("doctor", "--json")
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    names = {c["name"]: c["ok"] for c in doc["checks"]}
    assert names["native core"] is True
    assert res.returncode == (0 if doc["ok"] else 1)
