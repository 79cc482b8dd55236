"""The batch spec: what to build, validated completely before any HSM action or file write.

A spec is a small YAML (or JSON) file; paths inside it are relative to the file::

    count: 10000                 # or  uids: uids.txt  (one 24-hex-digit board UID per line)
    layout_version: 1
    root_cert: root.pem          # RootCA certificate (PEM or DER), P-256
    ica_cert: ica.pem            # ICA certificate, issued by the RootCA, at most 768 B DER
    policy: {secure_boot_required: true, debug_lock_on_seal: true}
    hsm:
      uri: "pkcs11:token=nusec-oem"   # PIN from NUSEC_HSM_PIN / pin-source, never in the spec
      kek_label: otp-batch-kek        # non-extractable AES-256 KEK on that token
      signer_label: otp-batch-signer  # P-256 key that signs the batch's Merkle root
    chunk_size: 1024             # boards per work unit / file (a power of two)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nucore import otp
from pki.batch.errors import OtpBatchError

MAX_COUNT = 10_000_000


@dataclass(frozen=True)
class SharedMaterial:
    """What every image of the batch shares (the RootCA/ICA part of the layout)."""

    root_pub: bytes
    root_cert_sha256: bytes
    ica_cert_sha256: bytes
    ica_cert: bytes
    policy: int
    flags: int

    def to_json(self) -> dict[str, Any]:
        return {
            "root_pub": self.root_pub.hex(),
            "root_cert_sha256": self.root_cert_sha256.hex(),
            "ica_cert_sha256": self.ica_cert_sha256.hex(),
            "ica_cert": self.ica_cert.hex(),
            "policy": self.policy,
            "flags": self.flags,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SharedMaterial:
        return cls(
            root_pub=bytes.fromhex(d["root_pub"]),
            root_cert_sha256=bytes.fromhex(d["root_cert_sha256"]),
            ica_cert_sha256=bytes.fromhex(d["ica_cert_sha256"]),
            ica_cert=bytes.fromhex(d["ica_cert"]),
            policy=int(d["policy"]),
            flags=int(d["flags"]),
        )


@dataclass(frozen=True)
class HsmRefs:
    uri: str
    kek_label: str
    signer_label: str


@dataclass(frozen=True)
class BatchSpec:
    """A validated spec. ``uids`` is None in count mode (images then carry a blank UID)."""

    count: int
    uids: tuple[bytes, ...] | None
    layout_version: int
    shared: SharedMaterial
    hsm: HsmRefs
    chunk_size: int

    def digest(self) -> str:
        """SHA-256 of the canonical spec, so a resumed build can refuse a changed spec."""
        body = {
            "count": self.count,
            "uids_sha256": hashlib.sha256(b"".join(self.uids)).hexdigest() if self.uids is not None else None,
            "layout_version": self.layout_version,
            "shared": self.shared.to_json(),
            "hsm": {"kek_label": self.hsm.kek_label, "signer_label": self.hsm.signer_label},
            "chunk_size": self.chunk_size,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _load_cert(path: Path, what: str) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OtpBatchError(f"spec: cannot read {what} {path}: {exc.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise OtpBatchError(f"spec: {what} {path} is not an X.509 certificate") from None


def _xy(cert: x509.Certificate, what: str) -> bytes:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise OtpBatchError(f"spec: the {what} key is not P-256")
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]


def _parse_uids(path: Path) -> tuple[bytes, ...]:
    try:
        lines = path.read_text().split()
    except OSError as exc:
        raise OtpBatchError(f"spec: cannot read UID list {path}: {exc.strerror}") from None
    out: list[bytes] = []
    for n, word in enumerate(lines, 1):
        try:
            uid = bytes.fromhex(word)
        except ValueError:
            uid = b""
        if len(uid) != otp.UID_LEN:
            raise OtpBatchError(f"spec: UID list {path} item {n} is not 24 hex digits")
        if uid == b"\xff" * otp.UID_LEN:
            raise OtpBatchError(f"spec: UID list {path} item {n} is blank (all FF)")
        out.append(uid)
    if len(set(out)) != len(out):
        raise OtpBatchError(f"spec: UID list {path} has duplicates")
    return tuple(out)


def load_spec(path: Path) -> BatchSpec:
    """Read and fully validate a spec (certificates, chain, sizes, HSM labels)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise OtpBatchError(f"spec: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise OtpBatchError(f"spec: {path} is not valid YAML/JSON") from None
    if not isinstance(raw, dict):
        raise OtpBatchError(f"spec: {path} must be a mapping")
    return spec_from_dict(raw, path.parent)


def spec_from_dict(raw: dict[str, Any], base: Path) -> BatchSpec:
    known = {"count", "uids", "layout_version", "root_cert", "ica_cert", "policy", "hsm", "chunk_size"}
    unknown = set(raw) - known
    if unknown:
        raise OtpBatchError(f"spec: unknown key(s) {', '.join(sorted(unknown))}")
    if ("count" in raw) == ("uids" in raw):
        raise OtpBatchError("spec: give exactly one of `count` or `uids`")
    uids = _parse_uids(base / str(raw["uids"])) if "uids" in raw else None
    count = len(uids) if uids is not None else raw["count"]
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise OtpBatchError(f"spec: count must be an integer 1..{MAX_COUNT}")
    if raw.get("layout_version", 1) != otp.LAYOUT_VERSION:
        raise OtpBatchError(f"spec: layout_version must be {otp.LAYOUT_VERSION}")
    for key in ("root_cert", "ica_cert"):
        if not isinstance(raw.get(key), str):
            raise OtpBatchError(f"spec: `{key}` (a certificate file) is required")
    root = _load_cert(base / raw["root_cert"], "root_cert")
    ica = _load_cert(base / raw["ica_cert"], "ica_cert")
    try:
        ica.verify_directly_issued_by(root)
    except (ValueError, TypeError, Exception):  # InvalidSignature has no common base
        raise OtpBatchError("spec: ica_cert is not issued (signed) by root_cert") from None
    ica_der = ica.public_bytes(serialization.Encoding.DER)
    if len(ica_der) > otp.CERT_MAX:
        raise OtpBatchError(f"spec: ica_cert is {len(ica_der)} B DER; the OTP area holds {otp.CERT_MAX}")
    _xy(ica, "ica_cert")
    pol = raw.get("policy", {}) or {}
    if not isinstance(pol, dict) or set(pol) - {"secure_boot_required", "debug_lock_on_seal"}:
        raise OtpBatchError("spec: policy takes only secure_boot_required and debug_lock_on_seal")
    policy = (otp.OtpPolicy.SECURE_BOOT_REQUIRED if pol.get("secure_boot_required", True) else 0) | (
        otp.OtpPolicy.DEBUG_LOCK_ON_SEAL if pol.get("debug_lock_on_seal", True) else 0
    )
    hsm = raw.get("hsm")
    if not isinstance(hsm, dict) or not all(
        isinstance(hsm.get(k), str) and hsm[k] for k in ("uri", "kek_label", "signer_label")
    ):
        raise OtpBatchError("spec: hsm needs uri, kek_label and signer_label")
    if "pin-value" in hsm["uri"]:
        raise OtpBatchError("spec: the HSM URI must not carry a PIN (use NUSEC_HSM_PIN or pin-source)")
    chunk = raw.get("chunk_size", 1024)
    if not isinstance(chunk, int) or chunk < 1 or chunk > 65536 or chunk & (chunk - 1):
        raise OtpBatchError("spec: chunk_size must be a power of two, 1..65536")
    shared = SharedMaterial(
        root_pub=_xy(root, "root_cert"),
        root_cert_sha256=hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).digest(),
        ica_cert_sha256=hashlib.sha256(ica_der).digest(),
        ica_cert=ica_der,
        policy=int(policy),
        flags=int(otp.OtpFlags.BATCH),
    )
    return BatchSpec(
        count=count,
        uids=uids,
        layout_version=otp.LAYOUT_VERSION,
        shared=shared,
        hsm=HsmRefs(hsm["uri"], hsm["kek_label"], hsm["signer_label"]),
        chunk_size=chunk,
    )
