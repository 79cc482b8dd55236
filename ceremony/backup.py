"""Custodian backup: split a KEK into M-of-N SLIP-39 shares, and combine M of them back.

Why SLIP-39 (shamir-mnemonic): shares are words a custodian can write down or check by eye, each
carries a checksum (a mistyped word is caught, not silently turned into a wrong key), and fewer
than M shares reveal nothing about the KEK. An optional passphrase encrypts the master secret, so
M stolen shares are not enough without it; note that SLIP-39 by design cannot tell a wrong
passphrase from a right one, which is why the ceremony records a KEK check value and restore
compares it before unwrapping anything.

Share files hold one mnemonic after ``#`` comment lines naming the ceremony and the custodian.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

import shamir_mnemonic

from ceremony.errors import BackupError

KEK_LEN = 32
_CHECK_CONTEXT = b"nusec ceremony kek check v1"


@dataclass(frozen=True)
class CustodianShare:
    """One custodian's share: ``index`` is 1-based in the config's custodian order."""

    custodian: str
    index: int
    mnemonic: str = field(repr=False)  # the words never appear in logs or tracebacks

    def fingerprint(self) -> str:
        """SHA-256 of the normalised words: recorded in the transcript so a share can be matched
        to its ceremony later without revealing it."""
        return share_fingerprint(self.mnemonic)


def share_fingerprint(mnemonic: str) -> str:
    """SHA-256 (hex) of a mnemonic with whitespace normalised and lower-cased."""
    return hashlib.sha256(" ".join(mnemonic.lower().split()).encode("ascii")).hexdigest()


def kek_check_value(kek: bytes) -> str:
    """A 16-hex-digit value that identifies a KEK without revealing it (HMAC-SHA-256, truncated).

    Restore compares it before any unwrap, turning "wrong shares or passphrase" into a clear
    error instead of an HSM unwrap failure."""
    return hmac.new(kek, _CHECK_CONTEXT, hashlib.sha256).hexdigest()[:16]


def split_kek(
    kek: bytes, custodians: list[str], threshold: int, passphrase: bytes = b""
) -> list[CustodianShare]:
    """Split ``kek`` into one share per custodian, any ``threshold`` of which recover it."""
    if len(kek) != KEK_LEN:
        raise BackupError(f"KEK must be {KEK_LEN} bytes, got {len(kek)}")
    if not 2 <= threshold <= len(custodians) <= 16:
        raise BackupError(f"need 2 <= threshold ({threshold}) <= custodians ({len(custodians)}) <= 16")
    try:
        groups = shamir_mnemonic.generate_mnemonics(
            group_threshold=1,
            groups=[(threshold, len(custodians))],
            master_secret=kek,
            passphrase=passphrase,
        )
    except ValueError as exc:
        raise BackupError(f"cannot split the KEK: {exc}") from None
    return [
        CustodianShare(custodian=name, index=i + 1, mnemonic=words)
        for i, (name, words) in enumerate(zip(custodians, groups[0], strict=True))
    ]


def combine_shares(mnemonics: list[str], passphrase: bytes = b"") -> bytes:
    """Recover the KEK from at least ``threshold`` shares; ``BackupError`` names what is wrong."""
    if not mnemonics:
        raise BackupError("no shares given")
    normalised = [" ".join(m.lower().split()) for m in mnemonics]
    if len(set(normalised)) != len(normalised):
        raise BackupError("the same share was given twice")
    try:
        groups = shamir_mnemonic.decode_mnemonics(normalised)
        group = next(iter(groups.values()))
        need = group.member_threshold()
        if len(groups) != 1 or len(group) < need:
            raise BackupError(f"need {need} shares, got {len(normalised)}")
        secret: bytes = shamir_mnemonic.combine_mnemonics(normalised, passphrase=passphrase)
        return secret
    except shamir_mnemonic.MnemonicError as exc:
        raise BackupError(f"shares rejected: {exc}") from None


def check_share_words(mnemonic: str, path: Path) -> None:
    """``BackupError`` if ``mnemonic`` is not a well-formed SLIP-39 share: a word outside the
    wordlist or a failing checksum (a mistyped word) is reported as such, before anyone asks
    whether the share belongs to this ceremony."""
    words = mnemonic.lower().split()
    wordlist = set(shamir_mnemonic.wordlist.WORDLIST)
    for n, word in enumerate(words, start=1):
        if word not in wordlist:
            # not a SLIP-39 word, so naming it reveals nothing of the share
            raise BackupError(f"share file {path}: word {n} ({word!r}) is not a SLIP-39 word (mistyped?)")
    try:
        shamir_mnemonic.share.Share.from_mnemonic(" ".join(words))
    except shamir_mnemonic.MnemonicError as exc:
        # shamir-mnemonic quotes the first words in its message: never repeat it
        what = "checksum" if "checksum" in str(exc).lower() else "format"
        raise BackupError(
            f"share file {path}: the SLIP-39 {what} check fails (a mistyped or missing word?)"
        ) from None


def share_file_text(share: CustodianShare, *, ceremony: str, threshold: int, total: int, check: str) -> str:
    """What goes in a custodian's share file: comment header, then the words on one line."""
    return (
        "# NuSec ceremony custodian share. Keep it offline; any "
        f"{threshold} of {total} shares restore the CA keys.\n"
        f"# ceremony: {ceremony}\n"
        f"# custodian: {share.custodian} (share {share.index} of {total})\n"
        f"# kek-check: {check}\n"
        f"{share.mnemonic}\n"
    )


def read_share_file(path: Path) -> str:
    """The mnemonic in a share file: every non-comment line joined (a custodian who copied a
    printed share by hand may have split the words over several lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BackupError(f"cannot read share file {path}: {exc.strerror}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise BackupError(f"share file {path} holds no share words")
    return " ".join(" ".join(lines).split())
