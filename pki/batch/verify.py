"""Offline verification of a batch, and of one image alone, with no HSM.

Whole batch: the seal's signature (with the pinned signer key when given), then every chunk:
each manifest line canonical, each image strictly parsed (layout rules + digest) and equal to its
line (digest, key, UID) and to the batch's shared material, each public key on the curve, and the
Merkle root over all lines equal to the signed one. A flipped byte anywhere in an image, a line,
``batch.json`` or the seal fails one of these.

One image: its bytes + its manifest line + the audit path + the seal (``image_proof``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from nucore import otp
from pki import merkle
from pki.batch.batchdir import (
    BATCH_JSON,
    BatchInfo,
    read_batch,
    read_chunk_lines,
    read_image,
    read_line,
)
from pki.batch.errors import OtpBatchError
from pki.batch.manifest import ManifestLine
from pki.batch.seal import Seal, chunk_roots, read_seal


@dataclass(frozen=True)
class VerifyReport:
    batch_id: str
    count: int
    merkle_root: str
    signer_pinned: bool


def check_image(info: BatchInfo, raw: bytes, line: ManifestLine, where: str) -> otp.OtpImage:
    try:
        img = otp.parse(raw)
    except otp.OtpError as exc:
        raise OtpBatchError(f"{where}: {exc}") from None
    sh = info.shared
    expected_uid = line.uid if line.uid is not None else b"\xff" * otp.UID_LEN
    if img.digest != line.otp_digest:
        raise OtpBatchError(f"{where}: image digest differs from its manifest line")
    if img.secure_boot_pub != line.sb_pub[1:] or line.sb_pub[0] != 4:
        raise OtpBatchError(f"{where}: secure-boot key differs from its manifest line")
    if img.uid != expected_uid:
        raise OtpBatchError(f"{where}: UID differs from its manifest line")
    if (
        img.root_pub,
        img.root_cert_sha256,
        img.ica_cert_sha256,
        img.ica_cert,
        int(img.config),
        int(img.flags),
    ) != (sh.root_pub, sh.root_cert_sha256, sh.ica_cert_sha256, sh.ica_cert, sh.policy, sh.flags):
        raise OtpBatchError(f"{where}: RootCA/ICA material differs from batch.json")
    if img.board_cert is not None:
        raise OtpBatchError(f"{where}: a bulk image must not carry a board certificate")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), line.sb_pub)
    except ValueError:
        raise OtpBatchError(f"{where}: the secure-boot key is not a valid P-256 point") from None
    return img


def _seal(info: BatchInfo, signer_pub: ec.EllipticCurvePublicKey | None) -> Seal:
    seal = read_seal(info)
    if seal is None:
        raise OtpBatchError("seal: the batch is not sealed (seal.json missing); finish `nusec otp build`")
    seal.verify_signature(signer_pub)
    st = seal.statement
    if (st.get("batch_id"), st.get("count"), st.get("chunk_size")) != (
        info.batch_id.hex(),
        info.count,
        info.chunk_size,
    ):
        raise OtpBatchError("seal: the statement is for a different batch")
    if st.get("batch_json_sha256") != hashlib.sha256((info.root / BATCH_JSON).read_bytes()).hexdigest():
        raise OtpBatchError("seal: batch.json was changed after sealing")
    return seal


def verify_batch(
    batch_dir: Path,
    *,
    signer_pub: ec.EllipticCurvePublicKey | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify everything offline; raises ``OtpBatchError`` naming the first problem."""
    info = read_batch(batch_dir)
    seal = _seal(info, signer_pub)
    roots: list[bytes] = []
    for c in range(info.chunks):
        lines = read_chunk_lines(info, c)
        n = info.chunk_len(c)
        name = info.manifest_path(c).name
        if len(lines) != n:
            raise OtpBatchError(f"manifest: {name} has {len(lines)} lines, expected {n}")
        images = info.images_path(c).read_bytes() if info.images_path(c).exists() else b""
        if len(images) != n * otp.IMAGE_SIZE:
            raise OtpBatchError(
                f"batch: image chunk {c} has {len(images)} bytes, expected {n * otp.IMAGE_SIZE}"
            )
        uids = info.uids(c * info.chunk_size, n)
        for k, raw_line in enumerate(lines):
            i = c * info.chunk_size + k
            line = ManifestLine.decode(raw_line, f"line {k + 1} of {name}")
            if line.index != i or line.uid != (uids[k] if uids is not None else None):
                raise OtpBatchError(f"manifest: line {k + 1} of {name} has the wrong index or UID")
            check_image(info, images[k * otp.IMAGE_SIZE : (k + 1) * otp.IMAGE_SIZE], line, f"image {i}")
        roots.append(merkle.root([merkle.leaf_hash(raw) for raw in lines]))
        if progress:
            progress(c * info.chunk_size + n, info.count)
    if merkle.root(roots) != seal.merkle_root:
        raise OtpBatchError("manifest: the Merkle root of the lines differs from the signed root")
    return VerifyReport(info.batch_id.hex(), info.count, seal.merkle_root.hex(), signer_pub is not None)


@dataclass(frozen=True)
class ImageProof:
    """Everything needed to check one image without the rest of the batch."""

    index: int
    line: bytes
    path: list[bytes]
    seal: Seal

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "line": self.line.decode(),
            "path": [p.hex() for p in self.path],
            "seal": self.seal.to_json(),
        }


def image_proof(batch_dir: Path, index: int) -> ImageProof:
    """The Merkle audit path of board ``index`` (within its chunk, then across chunk roots)."""
    info = read_batch(batch_dir)
    seal = read_seal(info)
    if seal is None:
        raise OtpBatchError("seal: the batch is not sealed")
    read_line(info, index)  # range and canonical checks
    c, k = divmod(index, info.chunk_size)
    lines = read_chunk_lines(info, c)
    inner = merkle.proof([merkle.leaf_hash(x) for x in lines], k)
    outer = merkle.proof(list(chunk_roots(info)), c)
    return ImageProof(index=index, line=lines[k], path=inner + outer, seal=seal)


def verify_image_alone(
    image: bytes,
    proof: ImageProof,
    shared_info: BatchInfo,
    signer_pub: ec.EllipticCurvePublicKey | None = None,
) -> otp.OtpImage:
    """Check one image against its line, the line against the signed root, and the signature."""
    proof.seal.verify_signature(signer_pub)
    st = proof.seal.statement
    line = ManifestLine.decode(proof.line, f"line of board {proof.index}")
    if line.index != proof.index:
        raise OtpBatchError("proof: the line is for another board")
    got = merkle.root_from_proof(merkle.leaf_hash(proof.line), proof.index, int(st["count"]), proof.path)
    if got != proof.seal.merkle_root:
        raise OtpBatchError("proof: the line is not under the signed Merkle root")
    return check_image(shared_info, image, line, f"image {proof.index}")


def verify_one(
    batch_dir: Path, index: int, signer_pub: ec.EllipticCurvePublicKey | None = None
) -> otp.OtpImage:
    """Check board ``index``'s image alone (its proof, not the whole batch)."""
    info = read_batch(batch_dir)
    return verify_image_alone(read_image(info, index), image_proof(batch_dir, index), info, signer_pub)
