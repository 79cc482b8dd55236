"""Bulk OTP image generation for a production batch (docs/otp-batch.md).

Public API::

    spec = load_spec(path)                                    # validated before any HSM action
    result = build_batch(spec, out_dir, backend, jobs=N, progress=cb)   # create or resume, seal
    report = verify_batch(out_dir, signer_pub=pinned_key)     # offline, no HSM
    img = verify_one(out_dir, index)                          # one image via its Merkle proof
    claimed = claim_next_image(out_dir, uid)                  # one board <- one image, recorded
    unwrap_board_key(backend, out_dir, index, label)          # a board's key, inside the HSM only
    key_import_body(out_dir, index)                           # body of the service's key import
"""

from __future__ import annotations

from nusec.otp_batch.batchdir import read_batch as read_batch_info
from nusec.otp_batch.batchdir import read_image, read_line
from nusec.otp_batch.build import BuildResult, build_batch
from nusec.otp_batch.claim import ClaimedImage, claim_next_image
from nusec.otp_batch.errors import OtpBatchError
from nusec.otp_batch.hsmkeys import check_board_key, ensure_batch_keys, unwrap_board_key
from nusec.otp_batch.seal import read_seal
from nusec.otp_batch.service_import import key_import_body
from nusec.otp_batch.spec import BatchSpec, load_spec
from nusec.otp_batch.verify import ImageProof, VerifyReport, image_proof, verify_batch, verify_one

__all__ = [
    "BatchSpec",
    "BuildResult",
    "ClaimedImage",
    "ImageProof",
    "OtpBatchError",
    "VerifyReport",
    "build_batch",
    "check_board_key",
    "claim_next_image",
    "ensure_batch_keys",
    "image_proof",
    "key_import_body",
    "load_spec",
    "read_batch_info",
    "read_image",
    "read_line",
    "read_seal",
    "unwrap_board_key",
    "verify_batch",
    "verify_one",
]
