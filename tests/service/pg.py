"""A throwaway PostgreSQL server (initdb + pg_ctl on a private socket dir and port) for the
service tests and ``bench/service.py``: a real server, started and removed by the caller."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pki.service.server import free_port


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(versions[-1]) if versions else None


MISSING = "PostgreSQL server binaries (initdb, pg_ctl) are not installed (run scripts/bootstrap)"


def available() -> bool:
    return pg_bin("initdb") is not None and pg_bin("pg_ctl") is not None


@contextmanager
def throwaway_postgres(max_connections: int = 200) -> Iterator[str]:
    """A fresh cluster on 127.0.0.1; yields its SQLAlchemy URL; stopped and deleted afterwards."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError(MISSING)
    # Not under pytest's tmp dir: that is private to the test user, and the server may run as another.
    base = Path(tempfile.mkdtemp(prefix="nusec-pg-"))
    data = base / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-k {data} -p {port} -h 127.0.0.1 -F -c max_connections={max_connections}"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(data / "log"), "start"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, timeout=60
        )
        shutil.rmtree(base, ignore_errors=True)
