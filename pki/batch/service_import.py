"""What the OEM service needs to take over one batch image's secure-boot key.

``POST /v1/boards/{uid}/secure-boot-key/import`` (docs/service-api.md) unwraps the image's key
into the service's HSM, after checking the image belongs to a batch sealed by the signer on its
own token. Its body is built from the batch folder alone: ``batch.json`` verbatim (the seal
covers its SHA-256), the seal, the image's manifest line and its Merkle audit path. Nothing in it
is secret: the key travels wrapped under the batch DEK, itself wrapped under the HSM's KEK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pki.batch.batchdir import BATCH_JSON
from pki.batch.verify import image_proof


def key_import_body(batch_dir: Path, index: int) -> dict[str, Any]:
    """JSON body of the service's secure-boot-key import for image ``index`` of ``batch_dir``."""
    proof = image_proof(batch_dir, index)
    return {
        "batch_json": (batch_dir / BATCH_JSON).read_text(),
        "seal": {"statement": proof.seal.statement, "signature": proof.seal.signature.hex()},
        "line": proof.line.decode(),
        "path": [p.hex() for p in proof.path],
    }
