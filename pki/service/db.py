"""Database plumbing: the engine and ``upgrade``, which runs the Alembic migrations to head at
start-up. The migrations cover the service's ``svc_*`` tables and the CA store's ``pki_*``
tables (``pki.store`` keeps its migrations here), so one ``upgrade`` makes a complete database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pki import store

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "svc_alembic_version"


def make_engine(url: str) -> Engine:
    """Engine for ``url`` (``pki.store``'s: SQLite gets WAL, busy timeout and foreign keys)."""
    return store.make_engine(url)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the service tables to ``revision`` (idempotent; run at every start)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
