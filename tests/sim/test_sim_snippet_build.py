"""The committed KeyGen snippet binary is exactly what `make -C snippets keygen` builds."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from nusec.board.snippet import SNIPPET_MAX_SIZE, load_committed_image
from tests.sim.sim_helpers import ROOT

BIN = ROOT / "nusec" / "board" / "bin"


def test_committed_keygen_matches_its_sha256() -> None:
    image = load_committed_image("keygen")
    assert hashlib.sha256(image).hexdigest() == (BIN / "keygen.bin.sha256").read_text().split()[0]
    assert 0 < len(image) <= SNIPPET_MAX_SIZE
    assert image[8:10] == b"\x00\xbe"  # the entry stub's BKPT, where every command ends


def test_keygen_rebuild_is_byte_identical(tmp_path: Path) -> None:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.fail("arm-none-eabi-gcc is missing: run scripts/bootstrap")
    out = tmp_path / "out"
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / "snippets" / "keygen"),
            f"OUTDIR={out}",
            f"BUILD={tmp_path / 'build'}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (out / "keygen.bin").read_bytes() == (BIN / "keygen.bin").read_bytes()
    assert (out / "keygen.bin.sha256").read_text() == (BIN / "keygen.bin.sha256").read_text()
