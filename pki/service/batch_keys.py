"""Checking a request to import a bulk-batch secure-boot key before the HSM touches it.

A board provisioned from a bulk OTP batch (docs/otp-batch.md) carries a secure-boot public key
the service did not make; its firmware must be signed with the batch's private key for that
image. The desktop tool sends what the batch folder holds for that image — ``batch.json``, the
seal, the manifest line and its Merkle audit path — and this module checks, with no trust in
the caller:

- the seal is signed by the batch signer key **on the service's own token** (origin), and its
  statement names this ``batch.json`` (by SHA-256), batch id, count and chunk size;
- the batch carries **this service's** RootCA/ICA (so the image burned next to the key chains
  to the service's CA);
- the manifest line is canonical, is under the signed Merkle root at its index, and is either
  made for this board's UID (UID list mode) or for no UID (count mode).

Every format is parsed by ``pki.batch``, the code that wrote the batch; this module only picks
the trust anchors (the service's token and CA) and names each failure as a problem. What comes
out (``BatchKeyRef``) is what ``pki.hsm.batch_import`` needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pki import merkle
from pki.batch.batchdir import parse_batch
from pki.batch.errors import OtpBatchError
from pki.batch.manifest import ManifestLine
from pki.batch.seal import SEAL_FORMAT, statement_digest
from pki.hsm import KeyBackend
from pki.service.problems import Problem


@dataclass(frozen=True)
class BatchKeyRef:
    """One checked batch image: where its key comes from and what it must be."""

    batch_id: str  # lower-case hex
    index: int
    kek_label: str
    wrapped_dek: bytes
    wrapped_key: bytes
    sb_pub: bytes  # 65-byte SEC1

    @property
    def ref(self) -> str:
        """``batch:<id>:<index>``: unique per image; the service gives one image to one board."""
        return f"batch:{self.batch_id}:{self.index}"


def _bad(slug: str, title: str, detail: str) -> Problem:
    return Problem(422, slug, title, detail)


def check_batch_import(
    backend: KeyBackend,
    *,
    uid: bytes,
    root_cert: x509.Certificate,
    ica_cert: x509.Certificate,
    batch_json: str,
    seal_statement: dict[str, Any],
    seal_signature: bytes,
    line: str,
    path: list[bytes],
) -> BatchKeyRef:
    """Check the request (see the module docstring); 422 ``Problem`` naming the first failure."""
    try:
        batch = parse_batch(batch_json.encode(), Path(), "batch_json")
    except OtpBatchError as exc:
        raise _bad("bad-batch", "Batch refused", str(exc)) from None
    chain = (
        hashlib.sha256(root_cert.public_bytes(serialization.Encoding.DER)).digest(),
        hashlib.sha256(ica_cert.public_bytes(serialization.Encoding.DER)).digest(),
    )
    if (batch.shared.root_cert_sha256, batch.shared.ica_cert_sha256) != chain:
        raise _bad(
            "batch-chain-mismatch",
            "Batch for another CA",
            "the batch carries another RootCA/ICA than this service",
        )

    signer = backend.find_ec_keypair(batch.signer_label)
    if signer is None:
        raise _bad(
            "batch-not-trusted",
            "Batch not trusted",
            f"the batch signer {batch.signer_label!r} is not a key on this service's HSM",
        )
    try:
        signer.public_key.verify(
            seal_signature, statement_digest(seal_statement), ec.ECDSA(Prehashed(hashes.SHA256()))
        )
    except InvalidSignature:
        raise _bad("bad-batch-seal", "Batch seal invalid", "the seal signature does not verify") from None
    expected = {
        "format": SEAL_FORMAT,
        "batch_id": batch.batch_id.hex(),
        "count": batch.count,
        "chunk_size": batch.chunk_size,
        "batch_json_sha256": hashlib.sha256(batch_json.encode()).hexdigest(),
    }
    if any(seal_statement.get(k) != v for k, v in expected.items()):
        raise _bad("bad-batch-seal", "Batch seal invalid", "the seal statement is not for this batch.json")
    try:
        signed_root = bytes.fromhex(str(seal_statement["merkle_root"]))
    except (KeyError, ValueError):
        raise _bad("bad-batch-seal", "Batch seal invalid", "the seal statement has no Merkle root") from None

    try:
        entry = ManifestLine.decode(line.encode(), "line")
    except OtpBatchError as exc:
        raise _bad("bad-batch-line", "Batch line refused", str(exc)) from None
    try:
        got = merkle.root_from_proof(merkle.leaf_hash(line.encode()), entry.index, batch.count, path)
    except ValueError:
        got = b""
    if got != signed_root:
        raise _bad(
            "bad-batch-proof",
            "Batch proof invalid",
            f"line {entry.index} is not under the signed Merkle root",
        )
    if entry.uid is not None and entry.uid != uid:
        raise _bad(
            "batch-image-for-other-board",
            "Image made for another board",
            f"batch image {entry.index} was made for board {entry.uid.hex().upper()}",
        )
    return BatchKeyRef(
        batch_id=batch.batch_id.hex(),
        index=entry.index,
        kek_label=batch.kek_label,
        wrapped_dek=batch.wrapped_dek,
        wrapped_key=entry.wrapped_key,
        sb_pub=entry.sb_pub,
    )
