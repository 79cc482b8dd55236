"""The committed reference firmware is exactly what the sources build, byte for byte."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

from tests.sim.firmware_board import FIRMWARE, ROOT

SHA_FILE = FIRMWARE.with_name("firmware.bin.sha256")


def test_rebuild_is_byte_identical_to_the_committed_binary(tmp_path: Path) -> None:
    assert shutil.which("arm-none-eabi-gcc"), "arm-none-eabi-gcc missing: run scripts/bootstrap"
    for attempt in ("a", "b"):  # two clean builds in different folders agree with each other too
        out = subprocess.run(
            [
                "make",
                "-s",
                "-C",
                str(ROOT / "snippets" / "firmware"),
                f"BUILD={tmp_path / attempt / 'obj'}",
                f"OUTDIR={tmp_path / attempt}",
            ],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert (tmp_path / attempt / "firmware.bin").read_bytes() == FIRMWARE.read_bytes()
    assert (tmp_path / "a" / "firmware.bin.sha256").read_text() == SHA_FILE.read_text()


def test_sha256_file_matches_the_binary() -> None:
    digest, name = SHA_FILE.read_text().split()
    assert name == "firmware.bin"
    assert digest == hashlib.sha256(FIRMWARE.read_bytes()).hexdigest()


def test_vector_table_points_into_the_image_and_sram() -> None:
    """Linked for the application slot: the image proper starts at 0x00100020, after the header."""
    raw = FIRMWARE.read_bytes()
    sp, reset = struct.unpack_from("<II", raw)
    assert 0x2000_0000 < sp <= 0x2020_0000
    assert reset & 1 and 0x0010_0020 <= reset & ~1 < 0x0010_0020 + len(raw)
