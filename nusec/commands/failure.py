"""How a ``nusec`` sub-command fails: one ``error: ...`` line on stderr, exit code 1, and with
``--json`` a last stdout line ``{"ok": false, "error": ...}``. Shared so every command fails alike
(scripts parse that last line)."""

from __future__ import annotations

import json
from typing import NoReturn

import typer


def fail(message: str, json_out: bool) -> NoReturn:
    """Report ``message`` as the command's one error line and exit 1."""
    typer.echo(f"error: {message}", err=True)
    if json_out:
        typer.echo(json.dumps({"ok": False, "error": message}))
    raise typer.Exit(1)


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its class name if it has none)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def os_error_message(exc: OSError) -> str:
    """``strerror: filename`` for an OSError (no errno noise, no traceback)."""
    where = f" {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}:{where}"
