"""Atomic replacement of a board's state file: a reader sees the old file or the new one, never
half of one. The simulator is the board actor and imports nothing of the OEM or desktop packages,
so it keeps its own copy of this small rule."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def replace_file(
    path: Path, data: bytes, *, mode: int = 0o600, sync: Callable[[int], None] | None = None
) -> None:
    """Write ``data`` to a fresh temp file beside ``path`` (``mode``, O_EXCL), ``sync`` it if
    given, and rename it over ``path``. The temp file never outlives a failure."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync is not None:
                sync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
