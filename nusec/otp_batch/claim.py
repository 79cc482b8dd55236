"""One board <- one image: ``claim_next_image`` records, atomically, which board took which image.

Claims live in ``claims.sqlite`` in the batch folder (one row per image, UID unique, written in
one IMMEDIATE transaction, so two provisioning stations can never take the same image). In UID
list mode a board can only take the image made for its UID; in count mode it takes the lowest
unclaimed index. Asking again for the same board returns its existing claim (a resumed run),
never a second image. Every claimed image is checked (layout, digest, manifest line) before it is
handed out. ``peek_next_image`` (dry runs) and ``read_claims`` only read the database.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from nucore import otp
from pki.batch.batchdir import CLAIMS_DB, BatchInfo, read_batch, read_image, read_line
from pki.batch.errors import OtpBatchError
from pki.batch.seal import read_seal
from pki.batch.verify import check_image


@dataclass(frozen=True)
class ClaimedImage:
    """The image a board must receive. ``already_claimed``: this board had claimed it before."""

    batch_id: str
    index: int
    uid: bytes
    image: otp.OtpImage
    sb_pub: bytes  # SEC1 uncompressed, as in the manifest
    already_claimed: bool

    def to_bytes(self) -> bytes:
        return self.image.to_bytes()


_COLUMNS = "idx INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, claimed_at TEXT NOT NULL"


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute(f"CREATE TABLE IF NOT EXISTS claims ({_COLUMNS})")
    return db


def claim_next_image(batch_dir: Path, uid: bytes) -> ClaimedImage:
    """Take (and record) the image for board ``uid`` (12 bytes, as FMC READ_UID returns it)."""
    info = _sealed_batch(batch_dir, uid, "claim")
    db = _connect(batch_dir / CLAIMS_DB)
    try:
        db.execute("BEGIN IMMEDIATE")
        index, already = _choose_index(db, info, uid)
        line = read_line(info, index)
        image = check_image(info, read_image(info, index), line, f"image {index}")
        if not already:
            db.execute(
                "INSERT INTO claims (idx, uid, claimed_at) VALUES (?, ?, ?)",
                (index, uid.hex(), dt.datetime.now(dt.UTC).isoformat()),
            )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()
    return ClaimedImage(info.batch_id.hex(), index, uid, image, line.sb_pub, already)


def peek_next_image(batch_dir: Path, uid: bytes) -> ClaimedImage:
    """The image ``claim_next_image`` would hand board ``uid`` right now, recording nothing (for
    ``--dry-run``): the claims database is only read, and not created when missing. A forecast,
    not a reservation: another station may take that image before this board's real run."""
    info = _sealed_batch(batch_dir, uid, "claim")
    db = _connect_read_only(batch_dir / CLAIMS_DB)
    try:
        index, already = _choose_index(db, info, uid)
    finally:
        db.close()
    line = read_line(info, index)
    image = check_image(info, read_image(info, index), line, f"image {index}")
    return ClaimedImage(info.batch_id.hex(), index, uid, image, line.sb_pub, already)


def read_claims(batch_dir: Path) -> dict[int, bytes]:
    """Every claim recorded in the batch: image index -> board UID (read only; empty before the
    first claim)."""
    db = _connect_read_only(batch_dir / CLAIMS_DB)
    try:
        return {int(idx): bytes.fromhex(uid) for idx, uid in db.execute("SELECT idx, uid FROM claims")}
    finally:
        db.close()


def _sealed_batch(batch_dir: Path, uid: bytes, what: str) -> BatchInfo:
    if len(uid) != otp.UID_LEN or uid == b"\xff" * otp.UID_LEN:
        raise OtpBatchError(f"{what}: the board UID must be 12 bytes and not blank")
    info = read_batch(batch_dir)
    if read_seal(info) is None:
        raise OtpBatchError(f"{what}: the batch is not sealed; finish `nusec otp build` first")
    return info


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """The claims database opened read-only; an empty in-memory one when no claim exists yet (so a
    look never creates the file)."""
    if not path.is_file():
        db = sqlite3.connect(":memory:")
        db.execute(f"CREATE TABLE claims ({_COLUMNS})")
        return db
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def _choose_index(db: sqlite3.Connection, info: BatchInfo, uid: bytes) -> tuple[int, bool]:
    """(index, already claimed by this board): its existing claim, its UID's image in UID-list
    mode, or the lowest unclaimed index in count mode."""
    row = db.execute("SELECT idx FROM claims WHERE uid = ?", (uid.hex(),)).fetchone()
    if row is not None:
        return int(row[0]), True
    if info.uid_list:
        index = _index_of_uid(info.root, uid, info.count)
        taken = db.execute("SELECT uid FROM claims WHERE idx = ?", (index,)).fetchone()
        if taken is not None:  # pragma: no cover - UIDs are unique, so only a tampered DB gets here
            raise OtpBatchError(f"claim: image {index} is already taken")
        return index, False
    top = db.execute("SELECT MAX(idx) FROM claims").fetchone()[0]
    index = 0 if top is None else int(top) + 1
    if index >= info.count:
        raise OtpBatchError(f"claim: all {info.count} images of the batch are taken")
    return index, False


def _index_of_uid(root: Path, uid: bytes, count: int) -> int:
    data = (root / "uids.bin").read_bytes()[: 12 * count]
    pos = data.find(uid)
    while pos != -1 and pos % 12:
        pos = data.find(uid, pos + 1)
    if pos != -1:
        return pos // 12
    raise OtpBatchError(f"claim: board {uid.hex()} is not in this batch's UID list")
