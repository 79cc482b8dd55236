"""``nusec hsm``: what a PKCS#11 module and token can do, checked before anything is written."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from nusec.commands.failure import first_line

app = typer.Typer(
    name="hsm",
    help=(
        "Check a PKCS#11 module and token before a ceremony, the service or a batch uses it.\n\n"
        "Example: nusec hsm check --uri 'pkcs11:token=nusec-issuing' --role service"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("check")
def check_cmd(
    uri: Annotated[str, typer.Option("--uri", help="pkcs11: URI of the token (module-path=, pin-source=).")],
    role: Annotated[str, typer.Option("--role", help="root | issuing | service | batch")],
    json_out: Annotated[bool, typer.Option("--json", help="End with one JSON object on stdout.")] = False,
) -> None:
    """List the mechanisms and capabilities ROLE needs and whether the module has them.

    Probes use session objects only (made and destroyed at once); the trusted-KEK probe runs
    only with the SO PIN (NUSEC_HSM_SO_PIN or NUSEC_HSM_SO_PIN_FILE). Exit 0: everything the
    role needs is there; 1: something is missing (named); 2: the token cannot be opened.

    Example: nusec hsm check --uri 'pkcs11:token=nusec-issuing?pin-source=file:pin' --role service
    """
    from pki.errors import PkiError
    from pki.hsm.pkcs11 import Pkcs11Backend
    from pki.hsm.preflight import preflight

    try:
        with Pkcs11Backend.from_uri(uri) as backend:
            report = preflight(backend, role)
    except PkiError as exc:
        typer.echo(f"error: {first_line(exc)}", err=True)
        if json_out:
            typer.echo(json.dumps({"ok": False, "error": first_line(exc)}))
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(json.dumps(report.as_dict()))
    else:
        token = report.token
        typer.echo(
            f"{token['token_label']}: {token['token_manufacturer']} {token['token_model']} serial"
            f" {token['token_serial']} firmware {token['token_firmware_version']};"
            f" {token['library_description']} {token['library_version']} ({token['library']})"
        )
        for c in report.checks:
            mark = {True: "ok     ", False: "MISSING", None: "skipped"}[c.ok]
            typer.echo(f"  {mark} {c.kind:<10} {c.name:<22} {c.detail}")
        typer.echo(f"role {role}: {'ok' if report.ok else 'NOT usable'}")
    if not report.ok:
        raise typer.Exit(1)
