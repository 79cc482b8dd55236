"""How a ``nusec`` sub-command fails: one ``error: ...`` line on stderr, exit code 1 (2 for bad
command-line input: ``usage``), and with ``--json`` a last stdout line ``{"ok": false, "error":
...}``. Shared so every command fails alike (scripts parse that last line; the codes are
``nusec.exit_codes``)."""

from __future__ import annotations

import json
from typing import NoReturn

import typer

from nusec.exit_codes import FAILED, USAGE


def fail(message: str, json_out: bool, code: int = FAILED) -> NoReturn:
    """Report ``message`` as the command's one error line and exit ``code`` (1: a step failed)."""
    typer.echo(f"error: {message}", err=True)
    if json_out:
        typer.echo(json.dumps({"ok": False, "error": message}))
    raise typer.Exit(code)


def usage(message: str, json_out: bool) -> NoReturn:
    """Bad command-line input, found before anything was changed: one error line, exit 2."""
    fail(message, json_out, USAGE)


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its class name if it has none)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def os_error_message(exc: OSError) -> str:
    """``strerror: filename`` for an OSError (no errno noise, no traceback)."""
    where = f" {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}:{where}"
