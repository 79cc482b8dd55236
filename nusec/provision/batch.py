"""``--mode batch``: the board's OTP image comes from a bulk batch (docs/otp-batch.md).

One board <- one image: the image is claimed for the board's UID in the batch's claims database
(asking again for the same UID returns the same image, so a resumed run, even one that lost its
journal, never takes a second one); the claim and the image are kept in the board's journal.
The service imports the image's secure-boot key into its HSM and must answer with that key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nusec.provision.errors import UsageError, VerificationError
from nusec.provision.report import BatchClaim

if TYPE_CHECKING:
    from nusec.provision.client import ServiceClient
    from nusec.provision.journal import Journal

log = logging.getLogger(__name__)

IMAGE_ARTIFACT = "batch_image.bin"
CLAIM_ARTIFACT = "batch_claim.json"


def check_batch_folder(batch_dir: Path | None) -> Path:
    """A batch folder must be a finished, sealed batch before any board is touched."""
    from pki.batch import OtpBatchError, read_batch_info, read_seal

    if batch_dir is None or not batch_dir.is_dir():
        raise UsageError("--mode batch needs --batch DIR (an existing bulk OTP batch folder)")
    try:
        info = read_batch_info(batch_dir)
        sealed = read_seal(info) is not None
    except OtpBatchError as exc:
        raise UsageError(f"--batch {batch_dir}: {exc}") from None
    if not sealed:
        raise UsageError(f"--batch {batch_dir}: the batch is not sealed; finish `nusec otp build` first")
    return batch_dir


@dataclass(frozen=True)
class ClaimedImage:
    image: bytes
    claim: BatchClaim


def claim(batch_dir: Path, uid: bytes, journal: Journal) -> ClaimedImage:
    """This board's image of the batch, claimed once and kept in the journal."""
    from nucore import otp
    from nusec.otp_batch import claim_next_image
    from pki.batch import OtpBatchError

    try:
        claimed = claim_next_image(batch_dir, uid)
    except OtpBatchError as exc:
        raise UsageError(f"batch: {exc}") from None
    image = claimed.to_bytes()
    otp.parse(image, check_digest=True)
    saved = saved_image(journal)  # None when missing or damaged: then it is simply written again
    if saved is not None and saved != image:
        raise VerificationError(
            f"the batch image claimed for this board differs from {journal.artifact(IMAGE_ARTIFACT)}"
        )
    if saved != image or saved_claim(journal) is None:
        journal.save_artifact(
            CLAIM_ARTIFACT, json.dumps({"batch_id": claimed.batch_id, "index": claimed.index}).encode()
        )
        journal.save_artifact(IMAGE_ARTIFACT, image)
    return ClaimedImage(image, BatchClaim(claimed.batch_id, claimed.index, claimed=True))


def saved_image(journal: Journal) -> bytes | None:
    """The claimed image kept in the journal, if it is there and parses with its digest."""
    from nucore import otp

    raw = journal.read_artifact(IMAGE_ARTIFACT)
    if raw is None:
        return None
    try:
        otp.parse(raw, check_digest=True)
    except otp.OtpError:
        return None
    return raw


def saved_claim(journal: Journal) -> BatchClaim | None:
    raw = journal.read_artifact(CLAIM_ARTIFACT)
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
        return BatchClaim(str(rec["batch_id"]), int(rec["index"]), claimed=True)
    except (ValueError, KeyError, TypeError):
        return None


def import_key(batch_dir: Path, uid: bytes, journal: Journal, svc: ServiceClient) -> tuple[bytes, BatchClaim]:
    """Have the service take over the claimed image's key (unwrapped inside its HSM), so it signs
    this board's firmware with it; its answer must be the image's key."""
    from nucore import otp
    from pki.batch import key_import_body

    got = claim(batch_dir, uid, journal)
    xy = otp.parse(got.image, check_digest=True).secure_boot_pub
    ans = svc.import_secure_boot_key(uid, key_import_body(batch_dir, got.claim.index))
    if ans.public_xy != xy:
        raise VerificationError("the service holds another secure-boot key than the claimed batch image's")
    return xy, got.claim


def peek(batch_dir: Path, uid: bytes) -> ClaimedImage:
    """The image a real run would claim (the claims database is only read), for a dry run."""
    from nucore import otp
    from nusec.otp_batch.claim import peek_next_image
    from pki.batch import OtpBatchError

    try:
        p = peek_next_image(batch_dir, uid)
    except OtpBatchError as exc:
        raise UsageError(f"batch: {exc}") from None
    image = p.to_bytes()
    otp.parse(image, check_digest=True)
    return ClaimedImage(image, BatchClaim(p.batch_id, p.index, claimed=p.already_claimed))
