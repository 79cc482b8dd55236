"""``nusec demo``: the main job end to end on embedded defaults (what ``make demo`` runs).

It grows with the product: each stage that exists runs, in the seed's order, and the last line
of ``--json`` names every artifact so anyone can check them with OpenSSL and imgtool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from nusec.commands.doctor import run_checks


def command(
    workdir: Annotated[Path, typer.Option("--workdir", help="Folder for every artifact of the run.")] = Path(
        "demo-out"
    ),
    json_out: Annotated[
        bool, typer.Option("--json", help="End with one JSON summary line naming every artifact.")
    ] = False,
) -> None:
    """Run the whole job on embedded defaults: SoftHSM2, SQLite, simulated boards."""
    workdir.mkdir(parents=True, exist_ok=True)
    checks = run_checks()
    missing = [c.name for c in checks if not c.ok]
    if missing:
        typer.echo(f"error: missing prerequisites: {', '.join(missing)} (run `nusec doctor`)", err=True)
        raise typer.Exit(1)
    summary: dict[str, Any] = {
        "workdir": str(workdir.resolve()),
        "root_cert": None,
        "ica_cert": None,
        "transcript": None,
        "boards": [],
        "batch": None,
    }
    typer.echo("demo: prerequisites ok")
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"demo: artifacts in {summary['workdir']}")
