"""``pki.files.write_atomic``: whole file or nothing, mode from the start, no overwrite when asked."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from pki.files import write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_with_the_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.key", b"secret", mode=0o600)
        write_atomic(tmp_path / "b.pem", b"public")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "a.key").read_bytes() == b"secret" and _mode(tmp_path / "a.key") == 0o600
    assert (tmp_path / "b.pem").read_bytes() == b"public" and _mode(tmp_path / "b.pem") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.key", "b.pem"]


def test_overwrite_replaces_and_no_overwrite_refuses(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    with pytest.raises(FileExistsError):
        write_atomic(path, b"three", overwrite=False)
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_no_overwrite_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "f").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "f", b"x", overwrite=False)
    assert not (tmp_path / "nowhere").exists()


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, b"old")

    def broken_sync(fd: int) -> None:
        raise OSError(errno.EIO, "disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(path, b"new", sync=broken_sync)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_sync_is_called_on_the_temp_file_and_can_be_skipped(tmp_path: Path) -> None:
    seen: list[int] = []
    write_atomic(tmp_path / "f", b"x", sync=seen.append)
    assert len(seen) == 1
    write_atomic(tmp_path / "g", b"y", sync=None)
    assert (tmp_path / "g").read_bytes() == b"y"


def test_tmp_suffix_names_the_partial_file(tmp_path: Path) -> None:
    seen: list[str] = []

    def look(fd: int) -> None:
        seen.extend(p.name for p in tmp_path.iterdir())

    write_atomic(tmp_path / "000001.bin", b"x", sync=look, tmp_suffix=".part")
    assert len(seen) == 1 and seen[0].startswith(".000001.bin.") and seen[0].endswith(".part")


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP])
def test_without_hard_links_it_still_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """FAT on a removable drive has no link(2): check-then-rename, same outcome when uncontended."""

    def no_links(src: object, dst: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "link", no_links)
    write_atomic(tmp_path / "f", b"one", overwrite=False)
    assert (tmp_path / "f").read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "f", b"two", overwrite=False)
    assert (tmp_path / "f").read_bytes() == b"one"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_other_link_errors_are_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "no space")

    monkeypatch.setattr(os, "link", full)
    with pytest.raises(OSError, match="no space"):
        write_atomic(tmp_path / "f", b"x", overwrite=False)
    assert list(tmp_path.iterdir()) == []
