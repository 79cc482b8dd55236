"""The committed reference firmware is exactly what the sources build, byte for byte."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

from tests.sim.firmware_board import FIRMWARE, ROOT

SHA_FILE = FIRMWARE.with_name("firmware.bin.sha256")
BL2_APP = FIRMWARE.with_name("firmware_bl2.bin")
NUBL2 = FIRMWARE.with_name("nubl2.bin")


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
        assert (tmp_path / attempt / "firmware_bl2.bin").read_bytes() == BL2_APP.read_bytes()
    assert (tmp_path / "a" / "firmware.bin.sha256").read_text() == SHA_FILE.read_text()
    assert (tmp_path / "a" / "firmware_bl2.bin.sha256").read_text() == BL2_APP.with_suffix(
        ".bin.sha256"
    ).read_text()


def test_nubl2_rebuild_is_byte_identical_to_the_committed_binary(tmp_path: Path) -> None:
    assert shutil.which("arm-none-eabi-gcc"), "arm-none-eabi-gcc missing: run scripts/bootstrap"
    out = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / "snippets" / "nubl2"),
            f"BUILD={tmp_path / 'obj'}",
            f"OUTDIR={tmp_path}",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "nubl2.bin").read_bytes() == NUBL2.read_bytes()
    digest, name = NUBL2.with_suffix(".bin.sha256").read_text().split()
    assert name == "nubl2.bin" and digest == hashlib.sha256(NUBL2.read_bytes()).hexdigest()
    sp, reset = struct.unpack_from("<II", NUBL2.read_bytes())  # linked after its 0x400 header
    assert 0x2000_0000 < sp <= 0x2020_0000 and reset & 1 and 0x0010_0400 <= reset & ~1 < 0x0014_0000


def test_board_c_layout_and_slots_match_the_host_constants(tmp_path: Path) -> None:
    """snippets/common/nusec_layout.h and nusec_slots.h against nuboard.layout/keyslots."""
    from nuboard import keyslots, layout

    checks = {f"{name}": getattr(layout, name) for name in vars(layout) if name.isupper()}
    checks |= {
        "NUSEC_KS_ROM_ROOT_SLOT_X": keyslots.ROM_ROOT_SLOT_X,
        "NUSEC_KS_ROM_ROOT_SLOT_Y": keyslots.ROM_ROOT_SLOT_Y,
        "NUSEC_KS_FIRST_FREE_SLOT": keyslots.FIRST_FREE_SLOT,
        "NUSEC_KS_IDENTITY_SLOT": keyslots.IDENTITY_SLOT,
    }
    src = tmp_path / "check.c"
    src.write_text(
        '#include "nusec_layout.h"\n#include "nusec_slots.h"\n'
        + "".join(f'_Static_assert(({k}) == {v}u, "{k}");\n' for k, v in checks.items()),
        encoding="ascii",
    )
    out = subprocess.run(
        ["arm-none-eabi-gcc", "-std=c11", "-fsyntax-only", "-I", str(ROOT / "snippets" / "common"), str(src)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


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
