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

What comes out (``BatchKeyRef``) is what ``pki.hsm.batch_import`` needs. The formats are the
batch's public contract (``nusec-otp-batch/1``, ``nusec-otp-seal/1``); pki cannot import nusec.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pki import merkle
from pki.hsm import KeyBackend
from pki.service.problems import Problem

BATCH_FORMAT = "nusec-otp-batch/1"
SEAL_FORMAT = "nusec-otp-seal/1"
_LINE_KEYS = ("i", "otp_digest", "sb_pub", "uid", "wrapped_key")


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


def _batch_json(text: str) -> dict[str, Any]:
    try:
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != BATCH_FORMAT:
            raise ValueError
        for key in ("batch_id", "wrapped_dek"):
            bytes.fromhex(d[key])
        if not isinstance(d["hsm"]["kek_label"], str) or not isinstance(d["hsm"]["signer_label"], str):
            raise ValueError
        for key in ("count", "chunk_size"):
            if not isinstance(d[key], int) or isinstance(d[key], bool) or d[key] < 1:
                raise ValueError
        for key in ("root_cert_sha256", "ica_cert_sha256"):
            bytes.fromhex(d["shared"][key])
    except (ValueError, KeyError, TypeError):
        raise _bad(
            "bad-batch", "Batch refused", f"batch_json is not a valid {BATCH_FORMAT} document"
        ) from None
    return d


def _line(text: str) -> dict[str, Any]:
    try:
        d = json.loads(text)
        if not isinstance(d, dict) or tuple(sorted(d)) != _LINE_KEYS:
            raise ValueError
        if json.dumps(d, sort_keys=True, separators=(",", ":")) != text or text != text.lower():
            raise ValueError
        if not isinstance(d["i"], int) or isinstance(d["i"], bool):
            raise ValueError
        for key in ("sb_pub", "wrapped_key", "otp_digest"):
            bytes.fromhex(d[key])
        if d["uid"] is not None and len(bytes.fromhex(d["uid"])) != 12:
            raise ValueError
        if len(bytes.fromhex(d["sb_pub"])) != 65:
            raise ValueError
    except (ValueError, TypeError, AttributeError):
        raise _bad("bad-batch-line", "Batch line refused", "line is not a canonical manifest line") from None
    return d


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
    batch = _batch_json(batch_json)
    shared = batch["shared"]
    chain = (
        hashlib.sha256(root_cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        hashlib.sha256(ica_cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )
    if (shared["root_cert_sha256"].lower(), shared["ica_cert_sha256"].lower()) != chain:
        raise _bad(
            "batch-chain-mismatch",
            "Batch for another CA",
            "the batch carries another RootCA/ICA than this service",
        )

    signer_label = batch["hsm"]["signer_label"]
    signer = backend.find_ec_keypair(signer_label)
    if signer is None:
        raise _bad(
            "batch-not-trusted",
            "Batch not trusted",
            f"the batch signer {signer_label!r} is not a key on this service's HSM",
        )
    digest = hashlib.sha256(
        json.dumps(seal_statement, sort_keys=True, separators=(",", ":")).encode()
    ).digest()
    try:
        signer.public_key.verify(seal_signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise _bad("bad-batch-seal", "Batch seal invalid", "the seal signature does not verify") from None
    expected = {
        "format": SEAL_FORMAT,
        "batch_id": batch["batch_id"],
        "count": batch["count"],
        "chunk_size": batch["chunk_size"],
        "batch_json_sha256": hashlib.sha256(batch_json.encode()).hexdigest(),
    }
    if any(seal_statement.get(k) != v for k, v in expected.items()):
        raise _bad("bad-batch-seal", "Batch seal invalid", "the seal statement is not for this batch.json")
    try:
        signed_root = bytes.fromhex(str(seal_statement["merkle_root"]))
    except (KeyError, ValueError):
        raise _bad("bad-batch-seal", "Batch seal invalid", "the seal statement has no Merkle root") from None

    entry = _line(line)
    index: int = entry["i"]
    try:
        got = merkle.root_from_proof(merkle.leaf_hash(line.encode()), index, batch["count"], path)
    except ValueError:
        got = b""
    if got != signed_root:
        raise _bad(
            "bad-batch-proof", "Batch proof invalid", f"line {index} is not under the signed Merkle root"
        )
    if entry["uid"] is not None and bytes.fromhex(entry["uid"]) != uid:
        raise _bad(
            "batch-image-for-other-board",
            "Image made for another board",
            f"batch image {index} was made for board {entry['uid'].upper()}",
        )
    return BatchKeyRef(
        batch_id=batch["batch_id"].lower(),
        index=index,
        kek_label=batch["hsm"]["kek_label"],
        wrapped_dek=bytes.fromhex(batch["wrapped_dek"]),
        wrapped_key=bytes.fromhex(entry["wrapped_key"]),
        sb_pub=bytes.fromhex(entry["sb_pub"]),
    )
