"""The conformance table (``conformance.toml``): M55M1 registers, bits and codes as Nuvoton's
public BSP publishes them, each with its source, and the names the simulator's model, the board
C header (``snippets/common/m55m1.h``) and the host writer give them. One owner for the facts:
tests check all three against these rows, and ``render_markdown`` is the table in
``docs/sim-board.md`` (``python -m nuboard.conformance`` prints it).
"""

from __future__ import annotations

import importlib
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "conformance.toml"
KINDS = ("base", "offset", "bit", "field", "code", "addr")
DOC_BEGIN = "<!-- conformance:begin (python -m nuboard.conformance) -->"
DOC_END = "<!-- conformance:end -->"


@dataclass(frozen=True)
class Row:
    """One published fact and who implements it."""

    name: str
    kind: str
    value: int
    source: str
    model: str | None = None  # "module:NAME" in nusim
    c: str | None = None  # macro in snippets/common/m55m1.h
    host: str | None = None  # "module:NAME" on the host; for an offset row, the absolute address

    @property
    def block(self) -> str:
        return self.name.split(".", 1)[0]


def load(path: Path = TABLE) -> list[Row]:
    """The rows, checked for shape (known kind, an int value, a source, unique names)."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)["row"]
    rows = [Row(**r) for r in raw]
    seen: set[str] = set()
    for r in rows:
        if r.kind not in KINDS or not isinstance(r.value, int) or not r.source.strip():
            raise ValueError(f"conformance row {r.name!r} is malformed")
        if r.name in seen:
            raise ValueError(f"conformance row {r.name!r} appears twice")
        seen.add(r.name)
    return rows


def bases(rows: list[Row]) -> dict[str, int]:
    return {r.name: r.value for r in rows if r.kind == "base"}


def expected_host_value(row: Row, rows: list[Row]) -> int:
    """What the host constant must be: the absolute address for a register offset."""
    if row.kind == "offset":
        return bases(rows)[row.block] + row.value
    return row.value


def resolve(ref: str) -> object:
    """The Python object a ``module:NAME`` (or ``module:NAME[i]``) reference names."""
    module, _, name = ref.partition(":")
    index = None
    if name.endswith("]"):
        name, _, idx = name[:-1].partition("[")
        index = int(idx)
    obj = getattr(importlib.import_module(module), name)
    return obj[index] if index is not None else obj


def render_markdown(rows: list[Row]) -> str:
    """The table as it appears in docs/sim-board.md."""
    lines = [
        "| register / bit / code | kind | value | source (M55M1 BSP) | simulator | board C | host |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        width = 8 if r.kind in ("base", "addr") else 1
        value = f"0x{r.value:0{width}X}" if r.kind != "field" else f"bit {r.value}"
        cells = [
            r.name,
            r.kind,
            f"`{value}`",
            r.source.replace("|", "\\|"),
            f"`{r.model.split(':', 1)[1]}`" if r.model else "",
            f"`{r.c}`" if r.c else "",
            f"`{r.host.split(':', 1)[1]}`" if r.host else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown(load()))
