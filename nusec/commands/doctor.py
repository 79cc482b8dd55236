"""``nusec doctor``: check that the machine has what NuSec needs, before anything is attempted."""

from __future__ import annotations

import importlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger(__name__)

SOFTHSM_PATHS = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _native() -> Check:
    try:
        mod = importlib.import_module("nucore.hashes")
        ok = mod.sha256(b"abc").hex().startswith("ba7816bf")
        return Check("native core", ok, "nucore._native loaded" if ok else "self-test failed")
    except ImportError as exc:
        return Check("native core", False, str(exc))


def _tool(name: str, why: str) -> Check:
    path = shutil.which(name)
    return Check(name, path is not None, path or f"not found ({why}); run `make setup`")


def _softhsm() -> Check:
    found = next((p for p in SOFTHSM_PATHS if Path(p).exists()), None)
    return Check("softhsm2", found is not None, found or "libsofthsm2.so not found; run `make setup`")


def run_checks() -> list[Check]:
    checks = [
        _native(),
        _softhsm(),
        _tool("openssl", "certificate checks"),
        _tool("arm-none-eabi-gcc", "building the board snippet"),
        _tool("softhsm2-util", "HSM token set-up"),
    ]
    for c in checks:
        log.debug("check %s: %s (%s)", c.name, "ok" if c.ok else "missing", c.detail)
    return checks


def command(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Check the native core, SoftHSM2, OpenSSL and the ARM toolchain. Exit 1 if any is missing.

    Example: nusec doctor --json
    """
    checks = run_checks()
    if json_out:
        typer.echo(json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}))
    else:
        for c in checks:
            typer.echo(f"{'ok ' if c.ok else 'MISSING'}  {c.name:20} {c.detail}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
