"""The ceremony transcript: a hash-chained JSON-lines log, closed with the new root key's signature.

Why a hash chain: each line carries the SHA-256 of the previous line's exact bytes, so editing,
inserting, removing or reordering any line breaks every line after it; the closing line is signed
by the root key made in the ceremony, so the last line cannot be rewritten either, and a
truncated transcript has no closing line. Each line is written and fsync'd as its step ends, so
an interrupted ceremony still leaves the evidence of how far it got.

Line shape (canonical JSON: sorted keys, no spaces, ASCII)::

    {"data": {...}, "operator": "...", "outputs": {"root-ca.pem": "<sha256>"}, "prev": "<sha256>",
     "seq": 3, "step": "root_cert", "time": "2026-11-24T20:41:07Z", "witnesses": ["..."]}

The first line's ``prev`` is 64 zeros. The closing line (``step == "close"``) also carries
``signer_spki`` (base64 DER SubjectPublicKeyInfo) and ``signature`` (base64 DER ECDSA-SHA256
over the canonical closing line without its ``signature`` field). ``outputs`` paths are
relative to the transcript's folder; ``verify_transcript`` checks them on disk.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import load_pem_x509_certificate

from ceremony.errors import TranscriptError

GENESIS = "0" * 64
CLOSE_STEP = "close"

#: Signs a 32-byte SHA-256 digest with the root key; returns a DER ECDSA signature.
DigestSigner = Callable[[bytes], bytes]


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The one byte encoding of a transcript line (without the newline)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256_hex(path.read_bytes())


def spki_sha256(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo: the key's fingerprint in transcripts."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return sha256_hex(der)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TranscriptWriter:
    """Appends hash-chained lines to a new transcript file; ``close`` signs the last line.

    The file is created exclusively (never overwrites) and every line is flushed to disk before
    ``append`` returns.
    """

    def __init__(self, path: Path, *, operator: str, witnesses: list[str]) -> None:
        self.path = path
        self._operator = operator
        self._witnesses = list(witnesses)
        self._seq = 0
        self._prev = GENESIS
        self._closed = False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._file = os.fdopen(fd, "wb")

    def append(
        self, step: str, data: Mapping[str, Any] | None = None, outputs: Mapping[str, Path] | None = None
    ) -> dict[str, Any]:
        """Record a finished step; ``outputs`` maps file paths (inside the transcript's folder)
        whose SHA-256 is recorded now and checked by ``verify_transcript`` later."""
        if self._closed:
            raise TranscriptError("transcript already closed")
        if step == CLOSE_STEP:
            raise TranscriptError("use close() for the closing line")
        line = self._line(step, data, outputs)
        self._write(line)
        return line

    def close(self, sign: DigestSigner, signer: ec.EllipticCurvePublicKey, data: Mapping[str, Any]) -> str:
        """Write the closing line signed by ``sign`` (the root key); returns its SHA-256."""
        line = self._line(CLOSE_STEP, data, None)
        line["signer_spki"] = base64.b64encode(
            signer.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).decode("ascii")
        signature = sign(hashlib.sha256(canonical(line)).digest())
        # Check before writing: a signature that does not verify must never close a transcript.
        try:
            signer.verify(signature, canonical(line), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise TranscriptError("the root key's signature over the transcript does not verify") from None
        line["signature"] = base64.b64encode(signature).decode("ascii")
        self._write(line)
        self._closed = True
        self._file.close()
        return self._prev

    def abandon(self) -> None:
        """Close the file without a signature (an aborted ceremony); idempotent."""
        if not self._file.closed:
            self._file.close()

    def _line(
        self, step: str, data: Mapping[str, Any] | None, outputs: Mapping[str, Path] | None
    ) -> dict[str, Any]:
        base = self.path.parent
        recorded: dict[str, str] = {}
        for path in (outputs or {}).values():
            rel = path.relative_to(base).as_posix()
            recorded[rel] = file_sha256(path)
        return {
            "seq": self._seq,
            "prev": self._prev,
            "time": _now(),
            "step": step,
            "operator": self._operator,
            "witnesses": self._witnesses,
            "data": dict(data or {}),
            "outputs": recorded,
        }

    def _write(self, line: Mapping[str, Any]) -> None:
        raw = canonical(line)
        self._file.write(raw + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._prev = sha256_hex(raw)
        self._seq += 1


@dataclass
class TranscriptReport:
    """What ``verify_transcript`` found; it raises on the first failure, so all of this held."""

    path: Path
    lines: int
    steps: list[str]
    signer_spki_sha256: str
    root_cert_sha256: str | None
    outputs_checked: dict[str, str] = field(default_factory=dict)
    rehearsal: bool = False
    kind: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "transcript": str(self.path),
            "kind": self.kind,
            "rehearsal": self.rehearsal,
            "lines": self.lines,
            "steps": self.steps,
            "signer_spki_sha256": self.signer_spki_sha256,
            "root_cert_sha256": self.root_cert_sha256,
            "outputs_checked": self.outputs_checked,
        }


def _parse_lines(path: Path) -> list[tuple[bytes, dict[str, Any]]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"cannot read transcript {path}: {exc.strerror}") from None
    if not raw.endswith(b"\n"):
        raise TranscriptError(f"{path}: truncated (last line has no newline)")
    out: list[tuple[bytes, dict[str, Any]]] = []
    for n, line in enumerate(raw[:-1].split(b"\n"), start=1):
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TranscriptError(f"{path}: line {n} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise TranscriptError(f"{path}: line {n} is not a JSON object")
        out.append((line, obj))
    return out


def verify_transcript(
    path: Path, *, root_cert: Path | None = None, check_outputs: bool = True
) -> TranscriptReport:
    """Check the hash chain, the closing signature and (by default) every recorded output.

    The signer must be the root key the transcript itself recorded (``data.spki_sha256`` of the
    ``root_key`` step, or ``data.root_spki_sha256`` of a restore's opening line); with
    ``root_cert`` it must also be that certificate's key, which pins the trust anchor from
    outside the transcript's folder.
    """
    lines = _parse_lines(path)
    if not lines:
        raise TranscriptError(f"{path}: empty transcript")
    prev = GENESIS
    recorded_spki: str | None = None
    root_cert_sha: str | None = None
    rehearsal = False
    kind = ""
    for n, (raw, obj) in enumerate(lines, start=1):
        if obj.get("seq") != n - 1:
            raise TranscriptError(
                f"{path}: line {n} has sequence number {obj.get('seq')!r}, expected {n - 1}"
            )
        if obj.get("prev") != prev:
            raise TranscriptError(f"{path}: hash chain broken at line {n} (line {n - 1} was changed)")
        if canonical(obj) != raw:
            raise TranscriptError(f"{path}: line {n} is not in canonical form (edited by hand?)")
        prev = sha256_hex(raw)
        data = obj.get("data")
        if not isinstance(data, dict):
            raise TranscriptError(f"{path}: line {n} has no data object")
        if n == 1:
            kind = str(data.get("kind", ""))
            rehearsal = bool(data.get("rehearsal", False))
        # The root key is recorded by the ceremony's root_key step (or a restore's opening line);
        # never taken from the closing line, which the signer itself writes.
        if obj.get("step") == "root_key" and isinstance(data.get("spki_sha256"), str):
            recorded_spki = data["spki_sha256"]
        if data.get("transcript_signer") is True and isinstance(data.get("spki_sha256"), str):
            recorded_spki = data["spki_sha256"]  # a ceremony without a root key (batch-keys)
        if n == 1 and isinstance(data.get("root_spki_sha256"), str):
            recorded_spki = data["root_spki_sha256"]
        if n == 1 and isinstance(data.get("root_cert_sha256"), str):
            root_cert_sha = data["root_cert_sha256"]  # a restore names the root it restores
        if obj.get("step") == "root_cert" and isinstance(data.get("cert_sha256"), str):
            root_cert_sha = data["cert_sha256"]
    _, last = lines[-1]
    if last.get("step") != CLOSE_STEP:
        raise TranscriptError(f"{path}: not closed (no signed closing line; the ceremony did not finish)")
    signer = _check_signature(path, last)
    signer_fp = spki_sha256(signer)
    if recorded_spki is None:
        raise TranscriptError(f"{path}: no root key fingerprint recorded before the closing line")
    if signer_fp != recorded_spki:
        raise TranscriptError(f"{path}: closing signature is by a key other than the recorded root key")
    if root_cert is not None:
        anchor = _load_cert_key(root_cert)
        if spki_sha256(anchor) != signer_fp:
            raise TranscriptError(f"{path}: signed by a key other than the one in {root_cert}")
    checked: dict[str, str] = {}
    if check_outputs:
        for n, (_, obj) in enumerate(lines, start=1):
            outputs = obj.get("outputs", {})
            if not isinstance(outputs, dict):
                raise TranscriptError(f"{path}: line {n} has a malformed outputs field")
            for rel, digest in outputs.items():
                target = path.parent / rel
                if not target.is_file():
                    raise TranscriptError(f"{path}: output {rel} (line {n}) is missing")
                if file_sha256(target) != digest:
                    raise TranscriptError(f"{path}: output {rel} differs from the one recorded at line {n}")
                checked[rel] = digest
    return TranscriptReport(
        path=path,
        lines=len(lines),
        steps=[str(obj.get("step")) for _, obj in lines],
        signer_spki_sha256=signer_fp,
        root_cert_sha256=root_cert_sha,
        outputs_checked=checked,
        rehearsal=rehearsal,
        kind=kind,
    )


def _check_signature(path: Path, last: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    try:
        signature = base64.b64decode(str(last["signature"]), validate=True)
        spki = base64.b64decode(str(last["signer_spki"]), validate=True)
        signer = serialization.load_der_public_key(spki)
    except (KeyError, ValueError):
        raise TranscriptError(f"{path}: closing line has no usable signature or signer key") from None
    if not isinstance(signer, ec.EllipticCurvePublicKey):
        raise TranscriptError(f"{path}: closing signer key is not an EC key")
    body = {k: v for k, v in last.items() if k != "signature"}
    try:
        signer.verify(signature, canonical(body), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise TranscriptError(
            f"{path}: closing signature does not verify (closing line was changed)"
        ) from None
    return signer


def _load_cert_key(cert_path: Path) -> ec.EllipticCurvePublicKey:
    try:
        cert = load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TranscriptError(f"cannot load root certificate {cert_path}: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TranscriptError(f"{cert_path}: root certificate key is not an EC key")
    return key
