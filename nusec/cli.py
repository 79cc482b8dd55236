"""The ``nusec`` command line: one typer app, one module per sub-command under ``nusec.commands``.

Sub-command modules keep heavy imports (pyocd, pkcs11, fastapi) inside their functions so
``nusec --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from nusec import __version__
from nusec.commands import audit, board, ceremony, db, demo, doctor, hsm, otp, provision, serve, sim
from nusec.commands import inspect as inspect_cmd
from nusec.commands import pki as pki_cmd

app = typer.Typer(
    name="nusec",
    help=(
        "NuSec: secure provisioning of Nuvoton Nu-Link3 programmers.\n\n"
        "Typical order: `nusec ceremony run` (offline, once) -> `nusec serve` (OEM service) -> "
        "`nusec provision --probe ...` per board. `nusec demo` runs it all on embedded defaults "
        "(SoftHSM2, SQLite, simulated boards). Every command takes --help; most take --json."
    ),
    no_args_is_help=True,
    invoke_without_command=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the NuSec version and exit.")] = False,
) -> None:
    """NuSec: secure provisioning of Nuvoton Nu-Link3 programmers."""
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)


app.command("doctor")(doctor.command)
app.command("demo")(demo.command)
app.command("provision")(provision.command)
app.command("inspect")(inspect_cmd.command)
app.command("serve")(serve.command)
app.add_typer(audit.app, name="audit")
app.add_typer(board.app, name="board")
app.add_typer(ceremony.app, name="ceremony")
app.add_typer(db.app, name="db")
app.add_typer(hsm.app, name="hsm")
app.add_typer(otp.app, name="otp")
app.add_typer(pki_cmd.app, name="pki")
app.add_typer(sim.app, name="sim")


def main() -> None:  # pragma: no cover - console entry point
    app()
