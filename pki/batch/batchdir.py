"""The batch folder: where each file lives, ``batch.json`` (written once, at init), and atomic writes.

    batch.json            what the batch is: spec digest, shared material, wrapped secrets
    uids.bin              UID list mode only: 12 bytes per board
    images/NNNNNN.bin     chunk NNNNNN: chunk_size images of 2048 bytes, back to back
    manifest/NNNNNN.jsonl chunk NNNNNN: one canonical line per board; its presence = chunk done
    seal.json             Merkle root statement + HSM signature
    claims.sqlite         which board took which image (``claim_next_image``)

Every file is written to a hidden ``.NAME.*.part`` then renamed, so a crash leaves either the
whole file or nothing under its real name; the manifest is renamed after the images, so a chunk
whose manifest exists is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nucore import otp
from pki import files
from pki.batch.errors import OtpBatchError
from pki.batch.manifest import ManifestLine
from pki.batch.spec import SharedMaterial

FORMAT = "nusec-otp-batch/1"
BATCH_JSON = "batch.json"
SEAL_JSON = "seal.json"
UIDS_BIN = "uids.bin"
CLAIMS_DB = "claims.sqlite"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` via a hidden ``.NAME.*.part`` + fdatasync + rename (never a half-written file)."""
    files.write_atomic(path, data, sync=os.fdatasync, tmp_suffix=".part")


@dataclass(frozen=True)
class BatchInfo:
    """The content of ``batch.json``. Wrapped secrets are wrapped under the HSM KEK (RFC 5649)."""

    root: Path
    batch_id: bytes
    count: int
    chunk_size: int
    uid_list: bool
    spec_sha256: str
    shared: SharedMaterial
    kek_label: str
    signer_label: str
    wrapped_seed: bytes
    wrapped_dek: bytes

    @property
    def chunks(self) -> int:
        return (self.count + self.chunk_size - 1) // self.chunk_size

    def chunk_len(self, c: int) -> int:
        return min(self.chunk_size, self.count - c * self.chunk_size)

    def images_path(self, c: int) -> Path:
        return self.root / "images" / f"{c:06d}.bin"

    def manifest_path(self, c: int) -> Path:
        return self.root / "manifest" / f"{c:06d}.jsonl"

    def uids(self, start: int, n: int) -> list[bytes] | None:
        """UIDs of boards start..start+n-1 (None in count mode)."""
        if not self.uid_list:
            return None
        with (self.root / UIDS_BIN).open("rb") as fh:
            fh.seek(start * otp.UID_LEN)
            data = fh.read(n * otp.UID_LEN)
        if len(data) != n * otp.UID_LEN:
            raise OtpBatchError(f"batch: {UIDS_BIN} is truncated")
        return [data[i : i + otp.UID_LEN] for i in range(0, len(data), otp.UID_LEN)]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "batch_id": self.batch_id.hex(),
            "count": self.count,
            "chunk_size": self.chunk_size,
            "uid_list": self.uid_list,
            "spec_sha256": self.spec_sha256,
            "shared": self.shared.to_json(),
            "hsm": {"kek_label": self.kek_label, "signer_label": self.signer_label},
            "wrapped_seed": self.wrapped_seed.hex(),
            "wrapped_dek": self.wrapped_dek.hex(),
            "key_derivation": "HKDF-SHA256(salt=batch_id, ikm=seed, info='nusec-otp-sb-key/1'||u64be(i)||uid)"
            " -> nc_p256_scalar_from_seed; key wrap: AES-256-KWP(DEK, PKCS#8)",
        }

    def write(self) -> None:
        write_atomic(
            self.root / BATCH_JSON, (json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n").encode()
        )


def read_batch(root: Path) -> BatchInfo:
    """Read ``batch.json`` with a clear error for anything missing or malformed."""
    path = root / BATCH_JSON
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise OtpBatchError(f"batch: {root} has no {BATCH_JSON} (not a batch folder)") from None
    return parse_batch(raw, root, str(path))


def parse_batch(raw: bytes, root: Path, where: str) -> BatchInfo:
    """``batch.json``'s bytes as a ``BatchInfo`` (the OEM service parses an import with this too)."""
    try:
        d = json.loads(raw)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise OtpBatchError(f"batch: {where} is not a {FORMAT} file")
        if any(type(d[key]) is not int for key in ("count", "chunk_size")):
            raise ValueError
        info = BatchInfo(
            root=root,
            batch_id=bytes.fromhex(d["batch_id"]),
            count=int(d["count"]),
            chunk_size=int(d["chunk_size"]),
            uid_list=bool(d["uid_list"]),
            spec_sha256=str(d["spec_sha256"]),
            shared=SharedMaterial.from_json(d["shared"]),
            kek_label=str(d["hsm"]["kek_label"]),
            signer_label=str(d["hsm"]["signer_label"]),
            wrapped_seed=bytes.fromhex(d["wrapped_seed"]),
            wrapped_dek=bytes.fromhex(d["wrapped_dek"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise OtpBatchError(f"batch: {where} is malformed") from None
    if info.count < 1 or info.chunk_size < 1 or info.chunk_size & (info.chunk_size - 1):
        raise OtpBatchError(f"batch: {where} has an invalid count or chunk size")
    return info


def read_chunk_lines(info: BatchInfo, c: int) -> list[bytes]:
    """The raw lines (without newlines) of chunk ``c``'s manifest."""
    path = info.manifest_path(c)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OtpBatchError(
            f"batch: chunk {c} is missing ({path.name}); run `nusec otp build` to finish"
        ) from None
    if not data.endswith(b"\n"):
        raise OtpBatchError(f"manifest: {path.name} does not end with a newline")
    return data[:-1].split(b"\n")


def read_line(info: BatchInfo, index: int) -> ManifestLine:
    """The manifest line of board ``index``."""
    if not 0 <= index < info.count:
        raise OtpBatchError(f"batch: board index {index} out of range 0..{info.count - 1}")
    c, k = divmod(index, info.chunk_size)
    lines = read_chunk_lines(info, c)
    if len(lines) != info.chunk_len(c):
        raise OtpBatchError(f"manifest: chunk {c} has {len(lines)} lines, expected {info.chunk_len(c)}")
    line = ManifestLine.decode(lines[k], f"line {k + 1} of {info.manifest_path(c).name}")
    if line.index != index:
        raise OtpBatchError(f"manifest: line for board {index} says index {line.index}")
    return line


def read_image(info: BatchInfo, index: int) -> bytes:
    """The 2048 raw bytes of board ``index``'s image (not yet checked)."""
    if not 0 <= index < info.count:
        raise OtpBatchError(f"batch: board index {index} out of range 0..{info.count - 1}")
    c, k = divmod(index, info.chunk_size)
    try:
        with info.images_path(c).open("rb") as fh:
            fh.seek(k * otp.IMAGE_SIZE)
            data = fh.read(otp.IMAGE_SIZE)
    except FileNotFoundError:
        raise OtpBatchError(f"batch: image chunk {c} is missing") from None
    if len(data) != otp.IMAGE_SIZE:
        raise OtpBatchError(f"batch: image chunk {c} is truncated")
    return data
