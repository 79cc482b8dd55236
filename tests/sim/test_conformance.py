"""The conformance table (nuboard/conformance.toml) against the three implementations:
the simulator's model, the board C header (compiled: one _Static_assert per row) and the host
writer; and the table in docs/sim-board.md is the one the data renders."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from nuboard import conformance
from nusec.provision import otp_writer, rom_key
from tests.sim.sim_helpers import ROOT

HEADER = ROOT / "snippets" / "common" / "m55m1.h"
ROWS = conformance.load()


@pytest.mark.parametrize("row", [r for r in ROWS if r.model], ids=lambda r: r.name)
def test_model_matches_the_published_value(row: conformance.Row) -> None:
    assert row.model is not None
    assert conformance.resolve(row.model) == row.value, f"{row.model} != 0x{row.value:X} ({row.source})"


@pytest.mark.parametrize("row", [r for r in ROWS if r.host], ids=lambda r: r.name)
def test_host_writer_matches_the_published_value(row: conformance.Row) -> None:
    assert row.host is not None
    want = conformance.expected_host_value(row, ROWS)
    assert conformance.resolve(row.host) == want, f"{row.host} != 0x{want:X} ({row.source})"


def test_board_c_header_matches_the_table(tmp_path: Path) -> None:
    """Compiled, not grepped: the preprocessor and compiler evaluate every macro."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.fail("arm-none-eabi-gcc is missing: run scripts/bootstrap")
    checks = [
        f'_Static_assert(({r.c}) == 0x{r.value:X}u, "{r.c} is not {r.name} ({r.source})");'
        for r in ROWS
        if r.c
    ]
    src = tmp_path / "check.c"
    src.write_text('#include "m55m1.h"\n' + "\n".join(checks) + "\n", encoding="ascii")
    res = subprocess.run(
        ["arm-none-eabi-gcc", "-std=c11", "-fsyntax-only", "-I", str(HEADER.parent), str(src)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr


def test_every_macro_of_the_header_is_a_row() -> None:
    """The header holds nothing the table does not vouch for (helpers excepted)."""
    defined = set(re.findall(r"^#define (\w+)\b", HEADER.read_text(), re.M)) - {
        "M55M1_H",
        "REG32",
        "NS_OFFSET",
    }
    assert defined - {r.c for r in ROWS if r.c} == set()


@pytest.mark.parametrize(
    ("module", "not_registers"),
    [
        (otp_writer, {"BLANK_WORD", "ISP_POLL_LIMIT"}),
        (rom_key, {"KS_POLL_LIMIT", "ROM_ROOT_SLOTS", "ROM_ROOT_SLOT_X", "ROM_ROOT_SLOT_Y"}),
    ],
    ids=["otp_writer", "rom_key"],
)
def test_every_register_constant_of_a_host_writer_is_a_row(
    module: ModuleType, not_registers: set[str]
) -> None:
    names = {
        n
        for n, v in vars(module).items()
        if n.isupper() and isinstance(v, (int, tuple)) and n not in not_registers
    }
    prefix = module.__name__ + ":"
    covered = {r.host.split(":", 1)[1].split("[", 1)[0] for r in ROWS if r.host and r.host.startswith(prefix)}
    assert names - covered == set()


def test_docs_show_the_table_the_data_renders() -> None:
    doc = (ROOT / "docs" / "sim-board.md").read_text()
    begin, end = doc.index(conformance.DOC_BEGIN), doc.index(conformance.DOC_END)
    shown = doc[begin + len(conformance.DOC_BEGIN) : end].strip("\n") + "\n"
    assert shown == conformance.render_markdown(ROWS)
