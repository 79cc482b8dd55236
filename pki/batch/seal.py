"""The batch seal: one HSM signature over a statement that binds the Merkle root of all manifest
lines to the batch (its id, size and ``batch.json``), verifiable offline with the signer's
public key. This is the only per-batch signature; everything else hangs off the root."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pki import merkle
from pki.batch.batchdir import BATCH_JSON, SEAL_JSON, BatchInfo, read_chunk_lines, write_atomic
from pki.batch.errors import OtpBatchError

SEAL_FORMAT = "nusec-otp-seal/1"


@dataclass(frozen=True)
class Seal:
    statement: dict[str, Any]
    signature: bytes  # DER ECDSA over SHA-256(canonical statement)
    signer_pub: ec.EllipticCurvePublicKey

    @property
    def merkle_root(self) -> bytes:
        return bytes.fromhex(self.statement["merkle_root"])

    def digest(self) -> bytes:
        return statement_digest(self.statement)

    def verify_signature(self, signer_pub: ec.EllipticCurvePublicKey | None = None) -> None:
        """Check the signature with ``signer_pub`` (the pinned key) or the recorded one."""
        key = signer_pub or self.signer_pub
        try:
            key.verify(self.signature, self.digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
        except InvalidSignature:
            raise OtpBatchError(
                "seal: the signature does not verify (wrong signer or altered batch)"
            ) from None

    def to_json(self) -> dict[str, Any]:
        pem = self.signer_pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"statement": self.statement, "signature": self.signature.hex(), "signer_pub": pem.decode()}


def statement_digest(statement: dict[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()).digest()


def chunk_roots(info: BatchInfo) -> Iterator[bytes]:
    """Merkle root of each chunk's lines, one chunk in memory at a time. With a power-of-two chunk
    size every full chunk is a complete subtree, so the batch root is the tree over these roots:
    workers hash their own chunk and nothing ever holds all leaves."""
    for c in range(info.chunks):
        yield merkle.root([merkle.leaf_hash(line) for line in read_chunk_lines(info, c)])


def make_statement(info: BatchInfo, root: bytes) -> dict[str, Any]:
    return {
        "format": SEAL_FORMAT,
        "batch_id": info.batch_id.hex(),
        "count": info.count,
        "chunk_size": info.chunk_size,
        "merkle_root": root.hex(),
        "batch_json_sha256": hashlib.sha256((info.root / BATCH_JSON).read_bytes()).hexdigest(),
    }


def read_seal(info: BatchInfo) -> Seal | None:
    path = info.root / SEAL_JSON
    if not path.exists():
        return None
    raw = path.read_bytes()
    try:
        d = json.loads(raw)
        key = serialization.load_pem_public_key(d["signer_pub"].encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError
        seal = Seal(statement=dict(d["statement"]), signature=bytes.fromhex(d["signature"]), signer_pub=key)
    except (ValueError, KeyError, TypeError, AttributeError, UnsupportedAlgorithm):
        raise OtpBatchError(f"seal: {path} is malformed") from None
    # Every byte counts: a PEM or hex spelling the parsers tolerate, or moved whitespace, is an
    # alteration too, so the file must be exactly what write_seal would write for its content.
    if _seal_bytes(seal) != raw:
        raise OtpBatchError(f"seal: {path} is not byte-for-byte what the batch tool writes (altered?)")
    return seal


def _seal_bytes(seal: Seal) -> bytes:
    return (json.dumps(seal.to_json(), indent=1, sort_keys=True) + "\n").encode()


def write_seal(seal: Seal, info: BatchInfo) -> None:
    write_atomic(info.root / SEAL_JSON, _seal_bytes(seal))
