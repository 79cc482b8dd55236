"""Constant-time check (ctgrind): P-256 keygen/sign/ECDH under valgrind with secrets undefined.

The harness (tests/native/ctgrind/ctgrind_p256.c) marks seeds, private keys and hedging entropy
undefined with VALGRIND_MAKE_MEM_UNDEFINED; memcheck then reports any branch or address that
depends on them. It runs on the host build at -O2/-O3, the 32-bit-limb build the board uses and
the portable 64-bit carry chains. The same harness built with -DNC_P256_CTGRIND_LEAK (a branch plus a direct
table index on the secret comb digit) must be flagged, which proves the check can fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
HARNESS = Path(__file__).parent / "ctgrind" / "ctgrind_p256.c"
SECRET_ERRORS = ("Conditional jump or move depends on uninitialised value", "Use of uninitialised value")


def _tools() -> None:
    missing = [t for t in ("gcc", "valgrind") if shutil.which(t) is None]
    header = Path("/usr/include/valgrind/memcheck.h")
    if missing or not header.is_file():
        msg = f"ctgrind needs gcc, valgrind and {header} (missing: {missing or header})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def _build_and_run(
    tmp_path: Path, *defines: str, opt: str = "-O3", field: str = "portable"
) -> subprocess.CompletedProcess[str]:
    exe = tmp_path / ("ctgrind" + "".join(d.replace("-D", "_") for d in defines) + opt)
    sources = [HARNESS, *sorted(CSRC.glob("nc_p256*.c")), CSRC / "nc_hash.c"]
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            opt,
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-DNC_P256_CTGRIND",
            *defines,
            f"-I{CSRC}",
            *map(str, sources),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    # valgrind's virtual CPU hides ADX, so the asm field path runs only when asked for by name
    # (the NC_P256_CTGRIND build honours the request); "portable" is what it picks by itself.
    return subprocess.run(
        ["valgrind", "--error-exitcode=1", "--track-origins=yes", str(exe)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NUSEC_P256_FIELD": field},
    )


@pytest.mark.parametrize(
    ("opt", "defines", "field"),
    [
        ("-O2", [], "portable"),
        ("-O3", [], "portable"),
        ("-O2", [], "adx"),
        ("-O3", [], "adx"),
        ("-O2", ["-DNC_P256_LIMB32"], "portable"),
        ("-O2", ["-DNC_P256_NO_INTRIN"], "portable"),
    ],
    ids=["O2", "O3", "O2-adx-asm", "O3-adx-asm", "O2-32bit-limbs", "O2-portable-carries"],
)
def test_p256_secret_work_is_constant_time(tmp_path: Path, opt: str, defines: list[str], field: str) -> None:
    _tools()
    run = _build_and_run(tmp_path, *defines, opt=opt, field=field)
    report = run.stdout + run.stderr
    assert not any(e in report for e in SECRET_ERRORS), report
    assert f"field backend {field}" in run.stdout, report
    assert "ctgrind harness done, 0 failures" in run.stdout, report
    assert run.returncode == 0, report


def test_ctgrind_flags_the_deliberately_leaky_build(tmp_path: Path) -> None:
    _tools()
    run = _build_and_run(tmp_path, "-DNC_P256_CTGRIND_LEAK")
    report = run.stdout + run.stderr
    assert run.returncode != 0, report
    assert any(e in report for e in SECRET_ERRORS), report
    assert "comb_mul" in report, report
