"""One board <- one image: ``claim_next_image`` records, atomically, which board took which image.

Claims live in ``claims.sqlite`` in the batch folder (one row per image, UID unique, written in
one IMMEDIATE transaction, so two provisioning stations can never take the same image). In UID
list mode a board can only take the image made for its UID; in count mode it takes the lowest
unclaimed index. Asking again for the same board returns its existing claim (a resumed run),
never a second image. Every claimed image is checked (layout, digest, manifest line) before it is
handed out.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from nucore import otp
from nusec.otp_batch.batchdir import CLAIMS_DB, read_batch, read_image, read_line
from nusec.otp_batch.errors import OtpBatchError
from nusec.otp_batch.seal import read_seal
from nusec.otp_batch.verify import _check_image


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


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute(
        "CREATE TABLE IF NOT EXISTS claims "
        "(idx INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, claimed_at TEXT NOT NULL)"
    )
    return db


def claim_next_image(batch_dir: Path, uid: bytes) -> ClaimedImage:
    """Take (and record) the image for board ``uid`` (12 bytes, as FMC READ_UID returns it)."""
    if len(uid) != otp.UID_LEN or uid == b"\xff" * otp.UID_LEN:
        raise OtpBatchError("claim: the board UID must be 12 bytes and not blank")
    info = read_batch(batch_dir)
    if read_seal(info) is None:
        raise OtpBatchError("claim: the batch is not sealed; finish `nusec otp build` first")
    db = _connect(batch_dir / CLAIMS_DB)
    try:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT idx FROM claims WHERE uid = ?", (uid.hex(),)).fetchone()
        already = row is not None
        if already:
            index = int(row[0])
        elif info.uid_list:
            index = _index_of_uid(info.root, uid, info.count)
            taken = db.execute("SELECT uid FROM claims WHERE idx = ?", (index,)).fetchone()
            if taken is not None:  # pragma: no cover - UIDs are unique, so only a tampered DB gets here
                raise OtpBatchError(f"claim: image {index} is already taken")
        else:
            top = db.execute("SELECT MAX(idx) FROM claims").fetchone()[0]
            index = 0 if top is None else int(top) + 1
            if index >= info.count:
                raise OtpBatchError(f"claim: all {info.count} images of the batch are taken")
        line = read_line(info, index)
        image = _check_image(info, read_image(info, index), line, f"image {index}")
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


def _index_of_uid(root: Path, uid: bytes, count: int) -> int:
    data = (root / "uids.bin").read_bytes()[: 12 * count]
    pos = data.find(uid)
    while pos != -1 and pos % 12:
        pos = data.find(uid, pos + 1)
    if pos != -1:
        return pos // 12
    raise OtpBatchError(f"claim: board {uid.hex()} is not in this batch's UID list")
