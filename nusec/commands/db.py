"""``nusec db upgrade`` / ``nusec db status``: the service database's schema, migrated only when
asked.

Why explicit: a migration changes tables under every process that uses them, so neither
``nusec serve`` nor ``nusec pki`` runs one on the side; they refuse a database that is not at
the head revision, naming this command. Run it once per release, with the service stopped.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from nusec.commands.failure import fail, first_line

app = typer.Typer(
    name="db",
    help=(
        "The OEM service's database schema (Alembic migrations of the svc_* and pki_* tables).\n\n"
        "Example: `nusec db upgrade --db-url sqlite:///nusec-service.db`, then `nusec serve ...`. "
        "`nusec db status` prints the revision a database is at."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DbUrlOpt = Annotated[
    str,
    typer.Option("--db-url", envvar="NUSEC_SERVICE_DB_URL", help="SQLAlchemy URL of the service database."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON line on stdout.")]


@app.command("upgrade")
def upgrade_cmd(db_url: DbUrlOpt, json_out: JsonOpt = False) -> None:
    """Migrate the database to the head revision (creates the tables of a new database).

    Example: nusec db upgrade --db-url postgresql+psycopg://nusec@db.example/nusec
    """
    from sqlalchemy.exc import SQLAlchemyError

    from pki.service.db import current_revision, head_revision, make_engine, upgrade

    try:
        engine = make_engine(db_url)
        try:
            before = current_revision(engine)
            upgrade(engine)
            after = current_revision(engine)
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        fail(f"database: {type(exc).__name__}", json_out)
    except Exception as exc:  # a bad URL, a missing driver
        fail(first_line(exc), json_out)
    assert after == head_revision()
    doc = {"ok": True, "from": before, "to": after, "changed": before != after}
    typer.echo(json.dumps(doc) if json_out else f"database at {after} (was {before or 'empty'})")


@app.command("status")
def status_cmd(db_url: DbUrlOpt, json_out: JsonOpt = False) -> None:
    """Print the database's revision and whether it is the head (exit 3 if not).

    Example: nusec db status --db-url sqlite:///nusec-service.db --json
    """
    from sqlalchemy.exc import SQLAlchemyError

    from pki.service.db import current_revision, head_revision, make_engine

    try:
        engine = make_engine(db_url)
        try:
            found = current_revision(engine)
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        fail(f"database: {type(exc).__name__}", json_out)
    head = head_revision()
    doc = {"ok": True, "revision": found, "head": head, "current": found == head}
    typer.echo(json.dumps(doc) if json_out else f"revision {found or 'none'} (head {head})")
    if found != head:
        raise typer.Exit(3)
