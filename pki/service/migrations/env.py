"""Alembic environment for the service tables: always given a live connection by ``db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from pki.service.db import VERSION_TABLE
from pki.service.models import ServiceBase
from pki.store import PkiBase

target_metadata = [ServiceBase.metadata, PkiBase.metadata]
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic -x url=...` from a shell
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
            "sqlalchemy.url"
        )
        if not url:
            raise SystemExit("give the database with -x url=SQLALCHEMY_URL")
        with create_engine(url).begin() as conn:
            _migrate(conn)
    else:
        _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
