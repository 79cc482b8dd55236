"""Atomic file writes: a file appears complete under its real name, or not at all.

Ceremony outputs, batch folders, provisioning journals and credential files all need the same
guarantee (a crash or an error never leaves a half-written file where a reader looks), so the
temp-file + fsync + rename dance lives here once, in the lowest layer they all import.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path

#: What ``link(2)`` says on a filesystem that has no hard links.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o644,
    overwrite: bool = True,
    sync: Callable[[int], None] | None = os.fsync,
    tmp_suffix: str = ".tmp",
) -> None:
    """Write ``data`` to a fresh hidden temp file next to ``path`` (created with ``mode``, O_EXCL),
    ``sync`` it (``None`` skips that, for test suites), then move it into place.

    With ``overwrite`` the move is a rename over any old file; without it a hard link, which raises
    ``FileExistsError`` if ``path`` exists (even one that appeared a moment ago) and leaves it alone
    (see ``_link_new`` for filesystems without hard links).
    The temp file is named ``.NAME.<random><tmp_suffix>`` and is removed on every failure.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{tmp_suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync is not None:
                sync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, path: Path) -> None:
    """Hard-link ``tmp`` to ``path`` (fails if ``path`` exists). A filesystem without hard links
    (FAT on a removable drive) gets check-then-rename instead: no longer race-free against
    another writer, but still never overwrites a file that is already there."""
    try:
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)
