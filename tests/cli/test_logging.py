"""Logging as pyocd and SPSDK do it: one logger per module, ``-v``/``-vv`` and ``--log-json``
accepted before or after any sub-command, warnings only by default."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("nucore", "pki", "ceremony", "nusec", "nuboard", "nusim")
#: Modules that configure logging (name third-party loggers or the root): nothing else may.
CONFIGURES_LOGGING = {"nusec/logs.py", "pki/service/server.py"}
NUSEC = str(Path(sys.executable).with_name("nusec"))


def _get_logger_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "getLogger"
    ]


def test_every_module_logs_through_its_own_named_logger() -> None:
    wrong: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(), filename=rel)
            for call in _get_logger_calls(tree):
                arg = call.args[0] if call.args else None
                if isinstance(arg, ast.Name) and arg.id == "__name__":
                    continue
                if rel in CONFIGURES_LOGGING:
                    continue  # the root, a package or a third-party logger, to set its level
                wrong.append(f"{rel}:{call.lineno}: getLogger({ast.unparse(arg) if arg else ''})")
            for node in ast.walk(tree):  # logging.info(...) etc. would log as the root logger
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "logging"
                    and node.func.attr
                    in {"debug", "info", "warning", "error", "exception", "critical", "log"}
                ):
                    wrong.append(f"{rel}:{node.lineno}: logging.{node.func.attr}() logs as the root logger")
    assert not wrong, wrong


def _doctor(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NUSEC, *flags], capture_output=True, text=True, timeout=60, check=False)


def test_default_is_quiet_and_flags_work_before_or_after_the_command() -> None:
    quiet = _doctor("doctor", "--json")
    assert quiet.returncode == 0 and quiet.stderr == ""
    before, after = _doctor("-vv", "doctor", "--json"), _doctor("doctor", "--json", "-vv")
    assert before.returncode == after.returncode == 0
    lines = before.stderr.splitlines()
    assert lines and all(line.startswith("DEBUG nusec.commands.doctor: check ") for line in lines), lines
    assert after.stderr.splitlines() == lines
    info_only = _doctor("doctor", "-v")
    assert "DEBUG" not in info_only.stderr
    assert json.loads(before.stdout.splitlines()[-1])["ok"] is True  # --json stdout untouched


def test_log_json_is_one_object_per_line_on_stderr() -> None:
    out = _doctor("doctor", "--log-json", "--verbose", "--verbose", "--json")
    assert out.returncode == 0
    records = [json.loads(line) for line in out.stderr.splitlines()]
    assert records and {tuple(sorted(r)) for r in records} == {("level", "logger", "message", "time")}
    assert {r["logger"] for r in records} == {"nusec.commands.doctor"} and records[0]["level"] == "debug"
    assert json.loads(out.stdout)["ok"] is True
