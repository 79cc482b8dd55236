"""Custodian shares: any M of N rebuild the KEK, M-1 do not, mistakes are named."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path

import pytest

from ceremony.backup import (
    combine_shares,
    kek_check_value,
    read_share_file,
    share_file_text,
    split_kek,
)
from ceremony.errors import BackupError

NAMES = ["Carol", "Dave", "Erin", "Frank"]


def test_every_m_subset_recovers_and_every_m_minus_1_subset_is_refused() -> None:
    kek = secrets.token_bytes(32)
    shares = split_kek(kek, NAMES, 3)
    assert [s.index for s in shares] == [1, 2, 3, 4]
    assert [s.custodian for s in shares] == NAMES
    for subset in itertools.combinations(shares, 3):
        assert combine_shares([s.mnemonic for s in subset]) == kek
    for pair in itertools.combinations(shares, 2):
        with pytest.raises(BackupError, match="need 3 shares, got 2"):
            combine_shares([s.mnemonic for s in pair])


def test_passphrase_changes_the_result_and_check_value_catches_it() -> None:
    kek = secrets.token_bytes(32)
    shares = split_kek(kek, NAMES[:3], 2, passphrase=b"correct horse")
    words = [shares[0].mnemonic, shares[2].mnemonic]
    assert combine_shares(words, b"correct horse") == kek
    wrong = combine_shares(words, b"wrong")
    assert wrong != kek  # SLIP-39 cannot tell; the ceremony's check value can
    assert kek_check_value(wrong) != kek_check_value(kek)


def test_shares_from_two_splits_do_not_mix() -> None:
    a = split_kek(secrets.token_bytes(32), NAMES[:3], 2)
    b = split_kek(secrets.token_bytes(32), NAMES[:3], 2)
    with pytest.raises(BackupError, match="shares rejected"):
        combine_shares([a[0].mnemonic, b[1].mnemonic])


def test_a_mistyped_word_is_caught_by_the_checksum() -> None:
    shares = split_kek(secrets.token_bytes(32), NAMES[:3], 2)
    words = shares[0].mnemonic.split()
    words[5] = "academic" if words[5] != "academic" else "acid"
    with pytest.raises(BackupError, match="shares rejected"):
        combine_shares([" ".join(words), shares[1].mnemonic])


def test_same_share_twice_is_refused() -> None:
    shares = split_kek(secrets.token_bytes(32), NAMES[:3], 2)
    with pytest.raises(BackupError, match="same share was given twice"):
        combine_shares([shares[0].mnemonic, shares[0].mnemonic.upper()])


def test_share_file_round_trip_and_repr_hides_words(tmp_path: Path) -> None:
    kek = secrets.token_bytes(32)
    shares = split_kek(kek, NAMES[:3], 2)
    path = tmp_path / "share.txt"
    path.write_text(
        share_file_text(shares[1], ceremony="c", threshold=2, total=3, check=kek_check_value(kek))
    )
    assert read_share_file(path) == shares[1].mnemonic
    assert "mnemonic" not in repr(shares[1])
    (tmp_path / "bad.txt").write_text("# only comments\n")
    with pytest.raises(BackupError, match="holds no share words"):
        read_share_file(tmp_path / "bad.txt")
    words = shares[0].mnemonic.split()
    (tmp_path / "typed.txt").write_text(" ".join(words[:10]) + "\n\n" + "  ".join(words[10:]) + "\n")
    assert combine_shares([read_share_file(tmp_path / "typed.txt"), shares[2].mnemonic]) == kek


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(BackupError):
        split_kek(b"short", NAMES, 2)
    with pytest.raises(BackupError):
        split_kek(secrets.token_bytes(32), NAMES[:2], 3)
