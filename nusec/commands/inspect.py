"""``nusec inspect``: read a board back and check what it holds against the chain.

Exit 0 when every check passes, 3 when one fails, 4 when the board cannot be reached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def command(
    probe: Annotated[
        list[str], typer.Option("--probe", help="pyocd unique id of the board's probe (repeatable).")
    ],
    ca: Annotated[
        Path | None, typer.Option("--ca", help="RootCA certificate PEM to check the OTP chain against.")
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option("--journal", help="Journal folder (finds a locked board's UID and OTP dump)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object (last line).")] = False,
) -> None:
    """Read back OTP, lock state, certificates and firmware; after the lock, what remains visible.

    Example: nusec inspect --probe sim:b1 --ca root-ca.pem --journal nusec-journal
    """
    from rich.console import Console
    from rich.table import Table

    from nusec.provision.inspect import inspect_board

    if ca is not None and not ca.is_file():
        typer.echo(f"error: --ca file {ca} does not exist", err=True)
        raise typer.Exit(2)
    results = [inspect_board(p, ca=ca, journal_dir=journal) for p in probe]
    if json_out:
        typer.echo(json.dumps({"ok": all(r.ok for r in results), "boards": [r.to_json() for r in results]}))
    else:
        console = Console()
        for r in results:
            table = Table(
                title=f"{r.probe}  uid {r.uid or '?'}  locked={r.locked}  debugger={r.debugger_access}"
            )
            table.add_column("check")
            table.add_column("ok")
            table.add_column("detail")
            for c in r.checks:
                table.add_row(c.name, "[green]yes[/]" if c.ok else "[red]NO[/]", c.detail)
            console.print(table)
            if r.debugger_access:
                console.print(f"OTP entries written {r.otp_written_entries}, locked {r.otp_locked_entries}")
            for v in r.visible_after_lock:
                console.print(f"visible after lock: {v}")
            if r.error:
                console.print(f"[red]error:[/] {r.error}")
    if any(r.error for r in results):
        raise typer.Exit(4)
    raise typer.Exit(0 if all(r.ok for r in results) else 3)
