"""Bulk OTP batches, the OEM's side (docs/otp-batch.md): the batch format, build, seal, verify.

Building and sealing need the HSM's KEK and signer, so this is OEM work; the OEM service checks a
key import with this same code (``pki.service.batch_keys``). The desktop keeps only the claim
(``nusec.otp_batch.claim``: one board <- one image) and the CLI face (``nusec otp``).

Public API::

    spec = load_spec(path)                                    # validated before any HSM action
    result = build_batch(spec, out_dir, backend, jobs=N, progress=cb)   # create or resume, seal
    report = verify_batch(out_dir, signer_pub=pinned_key)     # offline, no HSM
    img = verify_one(out_dir, index)                          # one image via its Merkle proof
    unwrap_board_key(backend, out_dir, index, label)          # a board's key, inside the HSM only
    key_import_body(out_dir, index)                           # body of the service's key import
"""

from __future__ import annotations

from pki.batch.batchdir import read_batch as read_batch_info
from pki.batch.batchdir import read_image, read_line
from pki.batch.build import BuildResult, build_batch
from pki.batch.errors import OtpBatchError
from pki.batch.hsmkeys import check_board_key, ensure_batch_keys, unwrap_board_key
from pki.batch.seal import read_seal
from pki.batch.service_import import key_import_body
from pki.batch.spec import BatchSpec, load_spec
from pki.batch.verify import ImageProof, VerifyReport, image_proof, verify_batch, verify_one

__all__ = [
    "BatchSpec",
    "BuildResult",
    "ImageProof",
    "OtpBatchError",
    "VerifyReport",
    "build_batch",
    "check_board_key",
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
