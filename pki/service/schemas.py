"""Request and response bodies of the REST API (pydantic): the contract published in /openapi.json.

Binary values travel as lower- or upper-case hex strings with fixed lengths, so a malformed
field is refused by validation (422 problem) before any handler or HSM sees it.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

UidHex = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{24}$", description="12-byte board UID as 24 hex digits")]
PointHex = Annotated[
    str,
    Field(pattern=r"^04[0-9A-Fa-f]{128}$", description="SEC1 uncompressed P-256 point (65 bytes) as hex"),
]
RawSigHex = Annotated[
    str, Field(pattern=r"^[0-9A-Fa-f]{128}$", description="ECDSA P-256 signature, raw r||s (64 bytes) as hex")
]
BlockHex = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{32}$", description="16 bytes as hex")]
HashHex = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{64}$", description="SHA-256 value (32 bytes) as hex")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoardState(enum.StrEnum):
    """Server-side provisioning states, in order (docs/service-api.md, ``pki.service.board_states``)."""

    REGISTERED = "registered"
    CERTIFIED = "certified"
    CERT_WRITTEN = "cert_written"  # reported
    SECURE_BOOT_KEY = "secure_boot_key"
    FIRMWARE_SIGNED = "firmware_signed"
    OTP_WRITTEN = "otp_written"  # reported (secure-boot key burned)
    LOCKED = "locked"  # reported
    KEY_AGREED = "key_agreed"


STATE_ORDER = list(BoardState)


class ReportedStep(enum.StrEnum):
    """Steps only the desktop tool can see (it reports them; the service records who and when)."""

    CA_WRITTEN = "ca_written"
    CERT_WRITTEN = "cert_written"
    SECURE_BOOT_KEY_WRITTEN = "secure_boot_key_written"
    OTP_WRITTEN = "otp_written"
    FIRMWARE_WRITTEN = "firmware_written"
    FIRMWARE_VERIFIED = "firmware_verified"
    LOCKED = "locked"
    LOCK_VERIFIED = "lock_verified"
    BOOTED = "booted"
    FAILED = "failed"


class CaChain(Strict):
    root_pem: str = Field(description="RootCA certificate, PEM")
    ica_pem: str = Field(description="ICA certificate, PEM")
    chain_pem: str = Field(description="ICA then RootCA, PEM (for TLS clients and openssl -untrusted)")


class Nubl2Image(Strict):
    image_b64: str = Field(description="the signed NuBL2 (MCUboot, header 0x400), base64")
    sha256: str = Field(description="SHA-256 of the signed image, hex")
    public_key_pem: str = Field(
        description="the NuBL2 key's public half: the ROM root key for KS OTP slots 0/1"
    )


class RegisterBoard(Strict):
    uid: UidHex


class StepRecord(Strict):
    step: str
    actor: str
    at: str
    detail: str


class BoardStatus(Strict):
    uid: str = Field(description="UID, upper-case hex")
    state: BoardState
    registered_at: str
    updated_at: str
    certificate_serial: str | None = Field(description="hex serial of the current board certificate")
    secure_boot_key: bool
    owner: str = Field(description="CN of the operator who registered the board (docs/service-api.md)")
    certificate_revoked: bool = Field(description="the current certificate is revoked: every change refused")
    key_agreement_locked: bool = Field(description="too many wrong key confirmations: an admin must reset")
    steps: list[StepRecord]


class ReportStep(Strict):
    step: ReportedStep
    detail: str = Field(
        default="",
        max_length=500,
        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$",
        description="free text; no control characters except tab and newline",
    )


class CertificateRequest(Strict):
    csr_pem: str = Field(min_length=1, max_length=8192, description="PKCS#10 CSR, PEM")


class ReissueRequest(Strict):
    """An admin's explicit re-issue: a new key for the board, and why (audited)."""

    csr_pem: str = Field(min_length=1, max_length=8192, description="PKCS#10 CSR for the new key, PEM")
    reason: str = Field(min_length=3, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")


class AdminReason(Strict):
    reason: str = Field(min_length=3, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")


class GrantRequest(Strict):
    """Let another operator (by certificate CN) act on a board."""

    operator: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    reason: str = Field(min_length=3, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")


class BoardCertificate(Strict):
    uid: str
    serial: str = Field(description="certificate serial number, hex")
    certificate_pem: str
    chain_pem: str = Field(description="ICA then RootCA, PEM")


class SecureBootKey(Strict):
    uid: str
    public_key_pem: str = Field(description="SubjectPublicKeyInfo, PEM (imgtool verify -k)")
    public_xy_hex: str = Field(description="X||Y (64 bytes) as hex: the OTP entries 17-24 value")
    created: bool = Field(description="true only on the request that made the key")


class BatchSeal(Strict):
    statement: dict[str, Any] = Field(description="the seal statement of seal.json (nusec-otp-seal/1)")
    signature: str = Field(
        pattern=r"^(?:[0-9A-Fa-f]{2}){8,80}$", description="DER ECDSA signature of the statement, hex"
    )


class SecureBootKeyImport(Strict):
    """One image of a bulk OTP batch (docs/otp-batch.md), with what proves it belongs to a sealed batch."""

    batch_json: str = Field(min_length=2, max_length=32768, description="the batch's batch.json, verbatim")
    seal: BatchSeal
    line: str = Field(
        min_length=2, max_length=2048, description="the image's manifest line, verbatim (no newline)"
    )
    path: list[HashHex] = Field(max_length=64, description="Merkle audit path of the line, leaf level first")


class KeyAgreementRequest(Strict):
    board_eph: PointHex
    board_sig: RawSigHex = Field(description='Sign(identity key, H("NuSec-ECDH-board-v1"||uid||board_eph))')


class KeyAgreementResponse(Strict):
    session_id: str
    srv_eph: str = Field(description="server ephemeral public point (65 bytes) as hex")
    srv_sig: str = Field(
        description=(
            'raw r||s by the board secure-boot key over H("NuSec-ECDH-server-v1"||uid||board_eph||srv_eph)'
        )
    )
    kc_server: str = Field(description="16-byte key confirmation value as hex")


class KeyConfirmRequest(Strict):
    kc_board: BlockHex


class KeyConfirmResponse(Strict):
    session_id: str
    uid: str
    confirmed: bool


class AuditEntry(Strict):
    seq: int
    at: str
    actor: str = Field(description="client certificate CN")
    actor_cert: str = Field(description="SHA-256 of the client certificate (DER), hex")
    role: str
    action: str
    subject: str
    outcome: str
    detail: dict[str, object]
    prev_hash: str
    row_hash: str


class AuditPage(Strict):
    entries: list[AuditEntry]
    next_after: int | None = Field(description="pass as ?after= to read the next page")


class AuditCheckpointEntry(Strict):
    n: int = Field(description="checkpoint number, 1, 2, ... without gaps")
    seq: int = Field(description="rows covered: the chain's head at signing time")
    head_hash: str = Field(description="row_hash of row seq (64 zeros for an empty chain)")
    at: str = Field(description="signing time, ISO 8601 UTC")
    kind: str = Field(description="why it was made: rows, interval, start, request")
    interval: float = Field(description="seconds within which the next checkpoint is promised")
    signature: str = Field(description="raw r||s by the ICA key, hex (docs/service-api.md)")


class AuditCheckpointPage(Strict):
    checkpoints: list[AuditCheckpointEntry]
    next_after: int | None = Field(description="pass as ?after= to read the next page")


class AuditVerification(Strict):
    ok: bool
    rows: int
    first_bad_seq: int | None
    reason: str


class Health(Strict):
    status: str
    version: str
