"""Migrations and the audit chain, on a SQLite file (no HSM needed).

The migration test compares the migrated schema with the ORM models (service and ``pki.store``)
using Alembic's own comparison, so a model change without a migration fails here.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from pki.service import audit
from pki.service.db import VERSION_TABLE, Store, make_engine, make_sessions, upgrade
from pki.service.locks import KeyedLocks
from pki.service.models import AuditRow, ServiceBase
from pki.store import PkiBase


def test_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    upgrade(engine)  # idempotent at every start
    tables = set(inspect(engine).get_table_names())
    assert {
        "svc_board",
        "svc_audit",
        "svc_idempotency",
        "pki_board",
        "pki_certificate",
        VERSION_TABLE,
    } <= tables
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diffs = list(compare_metadata(ctx, [ServiceBase.metadata, PkiBase.metadata]))  # type: ignore[arg-type]
        assert diffs == [], diffs
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


@pytest.fixture
def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine)
    return make_sessions(engine)


def _append(sessions, n: int) -> None:  # type: ignore[no-untyped-def]
    store = Store(sessions.kw["bind"])  # the writers' layer the service and `nusec pki` share
    for i in range(n):
        with store.write() as s:
            audit.append(
                s, actor="alice", role="operator", action="register", subject=f"{i:024x}", detail={"i": i}
            )


def test_chain_verifies_and_detects_edit_delete_and_reorder(sessions) -> None:  # type: ignore[no-untyped-def]
    _append(sessions, 6)
    with sessions() as s:
        assert audit.verify_chain(s).ok and audit.verify_chain(s).rows == 6
        s.execute(text("UPDATE svc_audit SET actor = 'mallory' WHERE seq = 3"))
        report = audit.verify_chain(s)
        assert not report.ok and report.first_bad_seq == 3 and "content" in report.reason
        s.rollback()
        s.execute(text("DELETE FROM svc_audit WHERE seq = 4"))
        report = audit.verify_chain(s)
        assert not report.ok and report.first_bad_seq == 5 and "missing" in report.reason
        s.rollback()
        # swap two rows' contents but keep their seq: the links break
        r2, r3 = s.get(AuditRow, 2), s.get(AuditRow, 3)
        assert r2 is not None and r3 is not None
        r2.subject, r3.subject = r3.subject, r2.subject
        s.flush()
        assert audit.verify_chain(s).first_bad_seq == 2
        s.rollback()
        assert audit.verify_chain(s).ok


def test_concurrent_appends_keep_one_chain(sessions) -> None:  # type: ignore[no-untyped-def]
    threads = [threading.Thread(target=_append, args=(sessions, 10)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as s:
        report = audit.verify_chain(s)
        assert report.ok and report.rows == 40


def test_keyed_locks_serialise_per_key_only() -> None:
    locks = KeyedLocks()
    inside: list[str] = []
    order: list[str] = []
    gate = threading.Event()

    def hold(key: str, tag: str) -> None:
        with locks.hold(key):
            inside.append(tag)
            order.append(f"in:{tag}")
            gate.wait(2)
            order.append(f"out:{tag}")
            inside.remove(tag)

    a = threading.Thread(target=hold, args=("A", "a1"))
    a.start()
    while "a1" not in inside:
        pass
    b = threading.Thread(target=hold, args=("B", "b1"))  # another key: not blocked
    b.start()
    while "b1" not in inside:
        pass
    c = threading.Thread(target=hold, args=("A", "a2"))  # same key: waits for a1
    c.start()
    assert "a2" not in inside
    gate.set()
    for t in (a, b, c):
        t.join()
    assert order.index("out:a1") < order.index("in:a2")
    assert locks._locks == {}
