"""The service database: engine, migrations (run only when asked), and ``Store``, the one way
both the service and the ``nusec pki`` admin commands write to it.

Why one layer: the audit chain is appended under a lock the database holds
(``pki.service.locks``); a tool that wrote rows on the side, or migrated the schema under a
running service, could fork the chain or change tables beneath it. So ``Store.write`` is the only
writing transaction, and ``upgrade`` runs only from ``nusec db upgrade`` (or a test/demo that asks
for it); ``Store.open`` and ``nusec serve`` refuse a database that is not at the head revision
with one line naming that command. The migrations cover the service's ``svc_*`` tables and the
CA store's ``pki_*`` tables (``pki.store`` keeps its migrations here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pki import store
from pki.errors import StoreError
from pki.service.locks import AppendLock, BoardLocks

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "svc_alembic_version"


class NotMigratedError(StoreError):
    """The database is not at the schema revision this code needs."""


def make_engine(url: str) -> Engine:
    """Engine for ``url`` (``pki.store``'s: SQLite gets WAL, busy timeout and foreign keys)."""
    return store.make_engine(url)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: never migrated)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the service tables to ``revision`` (idempotent). Only ``nusec db upgrade``, tests
    and the demo call this; the service never migrates on its own."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def check_migrated(engine: Engine) -> None:
    """``NotMigratedError`` (one line naming ``nusec db upgrade``) unless at the head revision."""
    try:
        found = current_revision(engine)
    except SQLAlchemyError as exc:
        raise NotMigratedError(f"database: cannot read its schema revision ({type(exc).__name__})") from None
    if found != head_revision():
        state = "has no NuSec schema" if found is None else f"is at schema revision {found}"
        raise NotMigratedError(
            f"database {engine.url.render_as_string(hide_password=True)} {state}, not {head_revision()}: "
            "run `nusec db upgrade --db-url URL` first"
        )


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


class Store:
    """The service database for writers: sessions, the board locks and the audit append lock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = make_sessions(engine)
        self.append_lock = AppendLock(engine)
        self.board_locks = BoardLocks(engine)

    @classmethod
    def open(cls, url: str) -> Store:
        """The store at ``url``, which must be migrated to the head revision."""
        engine = make_engine(url)
        try:
            check_migrated(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self, before_commit: Callable[[Session], None] | None = None) -> Iterator[Session]:
        """One transaction under the audit append lock; ``before_commit`` runs last inside it."""
        with self.sessions() as session, self.append_lock.held(session):
            try:
                yield session
                if before_commit is not None:
                    session.flush()
                    before_commit(session)
                session.commit()
            except BaseException:
                session.rollback()
                raise
