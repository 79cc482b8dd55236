"""The ``nusec`` command line: one typer app, one module per sub-command under ``nusec.commands``.

Sub-command modules keep heavy imports (pyocd, pkcs11, fastapi) inside their functions so
``nusec --help`` stays fast.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer
from typer._click.core import Context
from typer.core import TyperGroup

from nusec import __version__, logs
from nusec.commands import audit, board, ceremony, db, demo, doctor, hsm, otp, provision, serve, sim
from nusec.commands import inspect as inspect_cmd
from nusec.commands import pki as pki_cmd

#: The global options, accepted before or after the sub-command (``nusec -v provision ...`` or
#: ``nusec provision ... -vv``): ``-v``/``-vv``/``--verbose`` and ``--log-json``.
_GLOBAL_FLAG = re.compile(r"-v+|--verbose|--log-json")


class _GlobalOptionsAnywhere(TyperGroup):
    """The root group: moves the global logging flags to the front before click parses, so every
    sub-command honours them wherever they were typed (up to a ``--``)."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        flags = [a for a in args[:end] if _GLOBAL_FLAG.fullmatch(a)]
        rest = [a for a in args[:end] if not _GLOBAL_FLAG.fullmatch(a)] + args[end:]
        return super().parse_args(ctx, flags + rest)


app = typer.Typer(
    name="nusec",
    cls=_GlobalOptionsAnywhere,
    help=(
        "NuSec: secure provisioning of Nuvoton Nu-Link3 programmers.\n\n"
        "Typical order: `nusec ceremony run` (offline, once) -> `nusec serve` (OEM service) -> "
        "`nusec provision --probe ...` per board. `nusec demo` runs it all on embedded defaults "
        "(SoftHSM2, SQLite, simulated boards). Every command takes --help; most take --json. "
        "`-v`/`-vv` (progress/diagnostics on stderr) and `--log-json` work with every command.\n\n"
        "Example: `nusec -v provision --probe sim:b1 ...`; exit codes: docs/exit-codes.md."
    ),
    no_args_is_help=True,
    invoke_without_command=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the NuSec version and exit.")] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="-v: progress (INFO); -vv: diagnostics (DEBUG). On stderr."
        ),
    ] = 0,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log records as one JSON object per line on stderr.")
    ] = False,
) -> None:
    """NuSec: secure provisioning of Nuvoton Nu-Link3 programmers."""
    logs.configure(verbose, json_lines=log_json)
    ctx.obj = logs.LogSettings(verbose, log_json)  # for commands that start their own logging (serve)
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)


app.command("doctor")(doctor.command)
app.command("demo")(demo.command)
app.command("provision")(provision.command)
app.command("inspect")(inspect_cmd.command)
app.add_typer(audit.app, name="audit")
app.add_typer(board.app, name="board")
app.add_typer(ceremony.app, name="ceremony")
app.add_typer(db.app, name="db")
app.add_typer(hsm.app, name="hsm")
app.add_typer(otp.app, name="otp")
app.add_typer(pki_cmd.app, name="pki")
app.add_typer(serve.app, name="serve")
app.add_typer(sim.app, name="sim")


def main() -> None:  # pragma: no cover - console entry point
    app()
