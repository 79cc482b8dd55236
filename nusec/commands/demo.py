"""``nusec demo``: the main job end to end on embedded defaults (what ``make demo`` runs).

With ``--json`` the last line is one JSON object naming every artifact, so anyone can check
them with OpenSSL (`openssl verify -CAfile root.pem -untrusted ica.pem board.pem`) and imgtool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nusec.commands.doctor import run_checks


def command(
    workdir: Annotated[
        Path,
        typer.Option("--workdir", help="Folder for all artifacts (a previous demo folder is replaced)."),
    ] = Path("demo-out"),
    boards: Annotated[
        int, typer.Option("--boards", min=1, max=8, help="Simulated boards to provision online.")
    ] = 2,
    batch_count: Annotated[
        int, typer.Option("--batch-count", min=1, help="Images in the bulk OTP batch built at the end.")
    ] = 1000,
    json_out: Annotated[
        bool, typer.Option("--json", help="End with one JSON summary line naming every artifact.")
    ] = False,
) -> None:
    """Run the whole job end to end on embedded defaults (what `make demo` runs).

    Key ceremony on a throwaway SoftHSM2 token, the OEM service on 127.0.0.1 (HTTPS + mutual
    TLS, SQLite), provisioning of simulated Nu-Link3 boards through pyocd, inspection, and a bulk
    OTP batch. Exit 0 only if every stage succeeded.

    Example: nusec demo --workdir demo-out --json
    """
    from nusec.demo import DemoError, run_demo

    missing = [c.name for c in run_checks() if not c.ok]
    if missing:
        typer.echo(f"error: missing prerequisites: {', '.join(missing)} (run `nusec doctor`)", err=True)
        raise typer.Exit(1)

    def say(msg: str) -> None:
        typer.echo(f"demo: {msg}", err=json_out)

    names = tuple(f"demo-b{i + 1}" for i in range(boards))
    try:
        summary = run_demo(workdir, boards=names, batch_count=batch_count, say=say)
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    doc = summary.to_json()
    if json_out:
        typer.echo(json.dumps(doc))
        return
    typer.echo("")
    typer.echo(f"artifacts in {doc['workdir']}:")
    typer.echo(f"  RootCA certificate   {doc['root_cert']}")
    typer.echo(f"  ICA certificate      {doc['ica_cert']}")
    typer.echo(f"  ceremony transcript  {doc['transcript']}")
    for b in doc["boards"]:
        typer.echo(
            f"  board {b['uid']} ({b['probe']}, {b['mode']}): locked={b['locked']} "
            f"key_confirmed={b['key_confirmed']}"
        )
        typer.echo(f"    board certificate  {b['board_cert']}")
        typer.echo(f"    OTP dump           {b['otp_dump']}")
        typer.echo(f"    signed firmware    {b['firmware_signed']}")
        typer.echo(f"    secure-boot key    {b['secure_boot_pub']}")
    typer.echo(f"  bulk OTP batch       {doc['batch']} ({summary.batch_images} images)")
    typer.echo("check: openssl verify -CAfile ROOT -untrusted ICA BOARD_CERT")
    typer.echo("       imgtool verify -k SECURE_BOOT_PUB SIGNED_FIRMWARE")
