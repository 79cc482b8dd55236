"""The batch spec: what to build, validated completely before any HSM action or file write.

A spec is a small YAML (or JSON) file; paths inside it are relative to the file. ``SpecFile`` is
its strict pydantic schema (unknown keys refused, no silent coercion, errors one line naming the
field); ``load_spec`` then reads the certificates and the UID list and checks the chain, so
``nusec otp validate`` proves everything ``nusec otp build`` needs short of the HSM. ``TEMPLATE``
(``nusec otp template``) is the commented example.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nucore import otp
from pki.batch.errors import OtpBatchError
from pki.configs import LaxPath, one_line

MAX_COUNT = 10_000_000
MAX_CHUNK = 65536

TEMPLATE = """\
# NuSec bulk OTP batch spec (docs/otp-batch.md). Check it with `nusec otp validate FILE`.
# Paths are relative to this file. Give exactly one of `count` or `uids`.
count: 10000                      # boards in the batch (1..10000000); images carry a blank UID
# uids: uids.txt                  # or: one 24-hex-digit board UID per line (images made per UID)
layout_version: 1                 # the OTP image layout (docs/otp-layout.md)
root_cert: root.pem               # RootCA certificate (PEM or DER), P-256
ica_cert: ica.pem                 # ICA certificate, issued by the RootCA, at most 768 B DER
policy:
  secure_boot_required: true      # the boot ROM refuses unsigned firmware
  debug_lock_on_seal: true        # sealing the board also locks debug
hsm:
  uri: "pkcs11:token=nusec-issuing"   # PIN from NUSEC_HSM_PIN / pin-source, never in the spec
  kek_label: nusec-batch-kek          # non-extractable AES-256 KEK on that token
  signer_label: nusec-batch-seal      # P-256 key that signs the batch's Merkle root
chunk_size: 1024                  # boards per work unit / file (a power of two, 1..65536)
"""


class _Strict(BaseModel):
    """Every section refuses unknown fields and never coerces types silently."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PolicySection(_Strict):
    secure_boot_required: bool = True
    debug_lock_on_seal: bool = True


class HsmSection(_Strict):
    uri: Annotated[str, Field(min_length=1)]
    kek_label: Annotated[str, Field(min_length=1)]
    signer_label: Annotated[str, Field(min_length=1)]

    @field_validator("uri")
    @classmethod
    def _no_pin(cls, uri: str) -> str:
        if "pin-value" in uri:
            raise ValueError("the HSM URI must not carry a PIN (use NUSEC_HSM_PIN or pin-source)")
        return uri


class SpecFile(_Strict):
    """The spec file's schema, as written (paths not yet read)."""

    count: Annotated[int, Field(ge=1, le=MAX_COUNT)] | None = None
    uids: LaxPath | None = None
    layout_version: int = otp.LAYOUT_VERSION
    root_cert: LaxPath
    ica_cert: LaxPath
    policy: PolicySection | None = None
    hsm: HsmSection
    chunk_size: Annotated[int, Field(ge=1, le=MAX_CHUNK)] = 1024

    @field_validator("layout_version")
    @classmethod
    def _layout(cls, version: int) -> int:
        if version != otp.LAYOUT_VERSION:
            raise ValueError(f"must be {otp.LAYOUT_VERSION}")
        return version

    @field_validator("chunk_size")
    @classmethod
    def _power_of_two(cls, chunk: int) -> int:
        if chunk & (chunk - 1):
            raise ValueError(f"must be a power of two, 1..{MAX_CHUNK}")
        return chunk

    @model_validator(mode="after")
    def _count_or_uids(self) -> SpecFile:
        if (self.count is None) == (self.uids is None):
            raise ValueError("give exactly one of `count` or `uids`")
        return self


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
    """Read and fully validate a spec (schema, certificates, chain, sizes, UID list)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise OtpBatchError(f"spec: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise OtpBatchError(f"spec: {path} is not valid YAML/JSON") from None
    if not isinstance(raw, dict):
        raise OtpBatchError(f"spec: {path} must be a mapping")
    return spec_from_dict(raw, path.parent, str(path))


def spec_from_dict(raw: dict[str, Any], base: Path, where: str = "spec") -> BatchSpec:
    """Validate a spec's mapping (``where`` names it in errors); paths are relative to ``base``."""
    try:
        spec = SpecFile.model_validate(raw)
    except ValidationError as exc:
        raise OtpBatchError(f"spec: {where}: {one_line(exc)}") from None
    uids = _parse_uids(base / spec.uids) if spec.uids is not None else None
    count = len(uids) if uids is not None else spec.count
    assert count is not None  # the schema has exactly one of count and uids
    if not 1 <= count <= MAX_COUNT:
        raise OtpBatchError(f"spec: {where}: uids: the list must hold 1..{MAX_COUNT} boards")
    root = _load_cert(base / spec.root_cert, "root_cert")
    ica = _load_cert(base / spec.ica_cert, "ica_cert")
    try:
        ica.verify_directly_issued_by(root)
    except (ValueError, TypeError, Exception):  # InvalidSignature has no common base
        raise OtpBatchError("spec: ica_cert is not issued (signed) by root_cert") from None
    ica_der = ica.public_bytes(serialization.Encoding.DER)
    if len(ica_der) > otp.CERT_MAX:
        raise OtpBatchError(f"spec: ica_cert is {len(ica_der)} B DER; the OTP area holds {otp.CERT_MAX}")
    _xy(ica, "ica_cert")
    pol = spec.policy or PolicySection()
    policy = (otp.OtpPolicy.SECURE_BOOT_REQUIRED if pol.secure_boot_required else 0) | (
        otp.OtpPolicy.DEBUG_LOCK_ON_SEAL if pol.debug_lock_on_seal else 0
    )
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
        hsm=HsmRefs(spec.hsm.uri, spec.hsm.kek_label, spec.hsm.signer_label),
        chunk_size=spec.chunk_size,
    )
