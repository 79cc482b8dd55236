"""The /v1 endpoints: CA chain, boards and their state machine, certificates, secure-boot keys,
firmware signing, authenticated ECDH key agreement, audit log.

Each state-changing handler follows one shape: check the caller and the board's state, do the
HSM work outside any database lock, then write the effect and its audit row in one transaction.
Refusals are audited too. Handlers are plain ``def`` (FastAPI runs them in its thread pool), so
PKCS#11 and SQLAlchemy calls never block the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import anyio
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pki import store
from pki.ca import BOARD_IDENTITY, Role, issue_board_certificate_from_csr, load_csr
from pki.ecpoint import point_of
from pki.errors import KeyNotFoundError, PkiError, UnwrapError
from pki.hsm import KeyPolicy
from pki.hsm.batch_import import import_batch_key
from pki.service import audit, firmware
from pki.service.auth import Principal, check_role, principal_from_scope
from pki.service.batch_keys import BatchKeyRef, check_batch_import
from pki.service.context import ServiceContext
from pki.service.models import AuditRow, BoardProgress, BoardStep, FirmwareSigning, KeyAgreement
from pki.service.problems import Problem, from_pki_error, problem_responses
from pki.service.schemas import (
    STATE_ORDER,
    AuditEntry,
    AuditPage,
    AuditVerification,
    BoardCertificate,
    BoardState,
    BoardStatus,
    CaChain,
    CertificateRequest,
    Health,
    KeyAgreementRequest,
    KeyAgreementResponse,
    KeyConfirmRequest,
    KeyConfirmResponse,
    RegisterBoard,
    ReportedStep,
    ReportStep,
    SecureBootKey,
    SecureBootKeyImport,
    StepRecord,
)
from pki.signature import raw_to_der

BOARD_ECDH_PREFIX = b"NuSec-ECDH-board-v1"
SERVER_ECDH_PREFIX = b"NuSec-ECDH-server-v1"
KC_SERVER_PREFIX = b"NuSec-KC-server"
KC_BOARD_PREFIX = b"NuSec-KC-board"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe key: the same key with the same request replays the first answer",
        pattern=r"^[\x21-\x7e]{1,255}$",
    ),
]
Uid = Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{24}$", description="board UID, 24 hex digits")]
SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="key agreement session id")]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def _uid(text: str) -> tuple[str, bytes]:
    """Canonical (upper-case hex, bytes) form of a UID from the path; 422 problem if malformed."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 12:
        raise Problem(422, "bad-uid", "Bad board UID", "board UID must be 24 hex digits (12 bytes)")
    return raw.hex().upper(), raw


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _state_index(state: str) -> int:
    return STATE_ORDER.index(BoardState(state))


def _advance(board: BoardProgress, state: BoardState) -> None:
    if _state_index(board.state) < STATE_ORDER.index(state):
        board.state = state.value
    board.updated_at = _now()


def _step(session: Session, uid: str, step: str, who: Principal, detail: str = "") -> None:
    session.add(BoardStep(uid=uid, step=step, actor=who.name, at=_now(), detail=detail))


def _sb_label(uid: str) -> str:
    return f"nusec-sb-{uid}"


def _ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def _caller(request: Request) -> Principal:
    return principal_from_scope(request.scope, _ctx(request).config.insecure_dev)


def _operator(who: Annotated[Principal, Depends(_caller)]) -> Principal:
    check_role(who, (Role.OPERATOR, Role.ADMIN))
    return who


def _admin(request: Request, who: Annotated[Principal, Depends(_caller)]) -> Principal:
    try:
        check_role(who, (Role.ADMIN,))
    except Problem as problem:
        _ctx(request).record_refusal(who, f"{request.method} {request.url.path}", "-", problem.detail)
        raise
    return who


Operator = Annotated[Principal, Depends(_operator)]
Admin = Annotated[Principal, Depends(_admin)]


def build_router(ctx: ServiceContext) -> APIRouter:
    """All /v1 routes bound to ``ctx``."""
    router = APIRouter(prefix="/v1", responses=problem_responses(400))  # 400: body is not parseable

    def load_board(session: Session, uid: str) -> BoardProgress:
        board = session.get(BoardProgress, uid)
        if board is None:
            raise Problem(
                404, "board-not-registered", "Board not registered", f"board {uid} is not registered"
            )
        return board

    def require_state(board: BoardProgress, needed: BoardState, action: str) -> None:
        if _state_index(board.state) < STATE_ORDER.index(needed):
            raise Problem(
                409,
                "wrong-state",
                "Board not ready",
                f"{action} needs state {needed.value}; board {board.uid} is {board.state}",
            )

    def refused(who: Principal, action: str, uid: str, exc: Problem | PkiError) -> Problem:
        """Audit a refused action; return the problem to raise."""
        problem = exc if isinstance(exc, Problem) else from_pki_error(exc)
        ctx.record_refusal(who, action, uid, problem.detail, {"status": problem.status})
        return problem

    @contextmanager
    def refusals_audited(who: Principal, action: str, uid: str) -> Iterator[None]:
        """A refusal inside (``Problem`` or ``PkiError``) is audited and raised as a ``Problem``."""
        try:
            yield
        except (Problem, PkiError) as exc:
            raise refused(who, action, uid, exc) from None

    @contextmanager
    def board_locked(who: Principal, action: str, uid: str) -> Iterator[None]:
        """Hold the board's lock for ``action``, with refusals audited."""
        with refusals_audited(who, action, uid), ctx.board_locks.hold(uid):
            yield

    def status_of(session: Session, board: BoardProgress) -> BoardStatus:
        steps = session.execute(
            select(BoardStep).where(BoardStep.uid == board.uid).order_by(BoardStep.id)
        ).scalars()
        return BoardStatus(
            uid=board.uid,
            state=BoardState(board.state),
            registered_at=_iso(board.registered_at),
            updated_at=_iso(board.updated_at),
            certificate_serial=board.cert_serial,
            secure_boot_key=board.sb_public_der is not None,
            steps=[StepRecord(step=s.step, actor=s.actor, at=_iso(s.at), detail=s.detail) for s in steps],
        )

    # --- service -------------------------------------------------------------------------------

    @router.get("/health", response_model=Health, responses=problem_responses(401, 403))
    def health(who: Operator) -> Health:
        """Liveness, for any authenticated caller."""
        from pki.service import __version__

        return Health(status="ok", version=__version__)

    @router.get("/ca/chain", response_model=CaChain, responses=problem_responses(401, 403))
    def ca_chain(who: Operator) -> CaChain:
        """RootCA and ICA certificates (what the desktop tool writes to OTP and checks against)."""
        root, ica = _pem(ctx.root_cert), _pem(ctx.ica_cert)
        return CaChain(root_pem=root, ica_pem=ica, chain_pem=ica + root)

    # --- boards -------------------------------------------------------------------------------

    @router.post(
        "/boards",
        response_model=BoardStatus,
        status_code=201,
        responses={
            200: {"description": "Already registered", "model": BoardStatus},
            **problem_responses(401, 403, 409, 422),
        },
    )
    def register_board(
        body: RegisterBoard, who: Operator, response: Response, _key: IdempotencyKey = None
    ) -> BoardStatus:
        """Register a board by its 12-byte UID. Registering it again returns its status (200)."""
        uid, _ = _uid(body.uid)
        with ctx.board_locks.hold(uid), ctx.write() as session:
            board = session.get(BoardProgress, uid)
            if board is not None:
                response.status_code = 200
                return status_of(session, board)
            now = _now()
            board = BoardProgress(
                uid=uid,
                state=BoardState.REGISTERED.value,
                registered_by=who.name,
                registered_at=now,
                updated_at=now,
            )
            session.add(board)
            store.register_board(session, bytes.fromhex(uid))
            session.flush()
            _step(session, uid, BoardState.REGISTERED.value, who)
            audit.append(session, actor=who.name, role=who.role.value, action="register", subject=uid)
            session.flush()
            return status_of(session, board)

    @router.get("/boards/{uid}", response_model=BoardStatus, responses=problem_responses(401, 403, 404, 422))
    def board_status(uid: Uid, who: Operator) -> BoardStatus:
        """The board's provisioning state and the history of its steps."""
        uid, _ = _uid(uid)
        with ctx.sessions() as session:
            return status_of(session, load_board(session, uid))

    @router.post(
        "/boards/{uid}/steps",
        response_model=BoardStatus,
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    def report_step(uid: Uid, body: ReportStep, who: Operator, _key: IdempotencyKey = None) -> BoardStatus:
        """Record a step only the desktop tool can see (OTP written, locked, ...)."""
        uid, _ = _uid(uid)
        with ctx.board_locks.hold(uid), ctx.write() as session:
            board = load_board(session, uid)
            _step(session, uid, body.step.value, who, body.detail)
            board.updated_at = _now()
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action=f"report:{body.step.value}",
                subject=uid,
                detail={"detail": body.detail},
            )
            session.flush()
            return status_of(session, board)

    # --- certificate ---------------------------------------------------------------------------

    @router.post(
        "/boards/{uid}/certificate",
        response_model=BoardCertificate,
        responses=problem_responses(401, 403, 404, 409, 422, 503),
    )
    def certify(
        uid: Uid, body: CertificateRequest, who: Operator, _key: IdempotencyKey = None
    ) -> BoardCertificate:
        """Issue the board identity certificate from its CSR (policy: pki.ca). Same CSR, same certificate."""
        uid, raw_uid = _uid(uid)
        with board_locked(who, "certify", uid):
            return _certify(uid, raw_uid, body.csr_pem, who)

    def _certify(uid: str, raw_uid: bytes, csr_pem: str, who: Principal) -> BoardCertificate:
        csr = load_csr(csr_pem.encode())
        csr_sha = hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest()
        with ctx.sessions() as session:
            board = load_board(session, uid)
            if board.cert_der is not None and board.csr_sha256 == csr_sha:
                return _cert_answer(uid, board)
            if board.cert_der is not None:
                written = session.execute(
                    select(BoardStep.id).where(
                        BoardStep.uid == uid, BoardStep.step == ReportedStep.CERT_WRITTEN.value
                    )
                ).first()
                if written is not None:
                    raise Problem(
                        409,
                        "already-certified",
                        "Board already certified",
                        f"board {uid} already has a certificate written to OTP; a new key is refused",
                    )
        cert = issue_board_certificate_from_csr(
            ctx.issuer, csr, raw_uid, organization=ctx.config.organization
        )
        with ctx.write() as session:
            board = load_board(session, uid)
            reissue = board.cert_serial
            if reissue is not None:  # the board made a new key before its certificate reached OTP
                store.revoke_certificate(session, int(reissue, 16), reason=x509.ReasonFlags.superseded)
            store.record_certificate(session, cert, BOARD_IDENTITY.name, raw_uid)
            board.cert_der = cert.public_bytes(serialization.Encoding.DER)
            board.cert_serial = format(cert.serial_number, "x")
            board.csr_sha256 = csr_sha
            _advance(board, BoardState.CERTIFIED)
            _step(session, uid, BoardState.CERTIFIED.value, who, f"serial {board.cert_serial}")
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action="certify",
                subject=uid,
                detail={"serial": board.cert_serial, "replaces": reissue},
            )
            return _cert_answer(uid, board)

    def _cert_answer(uid: str, board: BoardProgress) -> BoardCertificate:
        assert board.cert_der is not None and board.cert_serial is not None
        cert = x509.load_der_x509_certificate(board.cert_der)
        return BoardCertificate(
            uid=uid,
            serial=board.cert_serial,
            certificate_pem=_pem(cert),
            chain_pem=_pem(ctx.ica_cert) + _pem(ctx.root_cert),
        )

    @router.get(
        "/boards/{uid}/certificate",
        response_model=BoardCertificate,
        responses=problem_responses(401, 403, 404, 422),
    )
    def get_certificate(uid: Uid, who: Operator) -> BoardCertificate:
        """The board's current identity certificate."""
        uid, _ = _uid(uid)
        with ctx.sessions() as session:
            board = load_board(session, uid)
            if board.cert_der is None:
                raise Problem(404, "no-certificate", "No certificate", f"board {uid} has no certificate yet")
            return _cert_answer(uid, board)

    # --- secure-boot key ------------------------------------------------------------------------

    def _sb_answer(uid: str, der: bytes, created: bool) -> SecureBootKey:
        public = serialization.load_der_public_key(der)
        assert isinstance(public, ec.EllipticCurvePublicKey)
        point = point_of(public)
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return SecureBootKey(
            uid=uid, public_key_pem=pem.decode(), public_xy_hex=point[1:].hex(), created=created
        )

    @router.post(
        "/boards/{uid}/secure-boot-key",
        response_model=SecureBootKey,
        responses=problem_responses(401, 403, 404, 409, 422, 503),
    )
    def make_secure_boot_key(uid: Uid, who: Operator, _key: IdempotencyKey = None) -> SecureBootKey:
        """Make the board's secure-boot key pair in the HSM (first call) or return its public key."""
        uid, _ = _uid(uid)
        with board_locked(who, "secure-boot-key", uid):
            with ctx.sessions() as session:
                board = load_board(session, uid)
                if board.sb_public_der is not None:
                    return _sb_answer(uid, board.sb_public_der, created=False)
                require_state(board, BoardState.CERTIFIED, "a secure-boot key")
            label = _sb_label(uid)
            existing = ctx.backend.find_ec_keypair(label)  # left by a run that died before commit
            info = existing or ctx.backend.generate_ec_keypair(label, policy=KeyPolicy())
            der = info.public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            with ctx.write() as session:
                board = load_board(session, uid)
                board.sb_key_label = label
                board.sb_public_der = der
                _advance(board, BoardState.SECURE_BOOT_KEY)
                _step(session, uid, BoardState.SECURE_BOOT_KEY.value, who)
                audit.append(
                    session,
                    actor=who.name,
                    role=who.role.value,
                    action="secure-boot-key",
                    subject=uid,
                    detail={"label": label, "public_sha256": hashlib.sha256(der).hexdigest()},
                )
            return _sb_answer(uid, der, created=True)

    @router.post(
        "/boards/{uid}/secure-boot-key/import",
        response_model=SecureBootKey,
        responses=problem_responses(401, 403, 404, 409, 422, 503),
    )
    def import_secure_boot_key(
        uid: Uid, body: SecureBootKeyImport, who: Operator, _key: IdempotencyKey = None
    ) -> SecureBootKey:
        """Import the board's secure-boot key from a sealed bulk OTP batch image into the HSM
        (unwrapped inside the HSM only); same answer as POST /secure-boot-key."""
        uid, raw_uid = _uid(uid)
        with board_locked(who, "secure-boot-key-import", uid):
            return _import_sb_key(uid, raw_uid, body, who)

    def _import_sb_key(uid: str, raw_uid: bytes, body: SecureBootKeyImport, who: Principal) -> SecureBootKey:
        with ctx.sessions() as session:
            board = load_board(session, uid)
            require_state(board, BoardState.CERTIFIED, "a secure-boot key")
            current_der, current_ref = board.sb_public_der, board.sb_batch_ref
        ref = check_batch_import(
            ctx.backend,
            uid=raw_uid,
            root_cert=ctx.root_cert,
            ica_cert=ctx.ica_cert,
            batch_json=body.batch_json,
            seal_statement=body.seal.statement,
            seal_signature=bytes.fromhex(body.seal.signature),
            line=body.line,
            path=[bytes.fromhex(p) for p in body.path],
        )
        der = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ref.sb_pub).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if current_der is not None:
            if current_der == der and current_ref == ref.ref:
                return _sb_answer(uid, der, created=False)
            raise Problem(
                409,
                "secure-boot-key-exists",
                "Board has another secure-boot key",
                f"board {uid} already has a different secure-boot key",
            )
        with ctx.sessions() as session:
            other = session.execute(
                select(BoardProgress.uid).where(BoardProgress.sb_batch_ref == ref.ref)
            ).scalar_one_or_none()
        if other is not None:
            raise Problem(
                409,
                "batch-image-taken",
                "Batch image taken",
                f"batch image {ref.index} belongs to board {other}",
            )
        label = _sb_label(uid)
        imported = _import_into_hsm(label, ref)
        try:
            with ctx.write() as session:
                board = load_board(session, uid)
                board.sb_key_label = label
                board.sb_public_der = der
                board.sb_batch_ref = ref.ref
                _advance(board, BoardState.SECURE_BOOT_KEY)
                _step(session, uid, BoardState.SECURE_BOOT_KEY.value, who, ref.ref)
                audit.append(
                    session,
                    actor=who.name,
                    role=who.role.value,
                    action="secure-boot-key-import",
                    subject=uid,
                    detail={
                        "label": label,
                        "public_sha256": hashlib.sha256(der).hexdigest(),
                        "batch_id": ref.batch_id,
                        "index": ref.index,
                    },
                )
        except IntegrityError:  # another board took the same image between the check and now
            if imported:
                ctx.backend.destroy_keypair(label)
            raise Problem(
                409,
                "batch-image-taken",
                "Batch image taken",
                f"batch image {ref.index} belongs to another board",
            ) from None
        return _sb_answer(uid, der, created=True)

    def _import_into_hsm(label: str, ref: BatchKeyRef) -> bool:
        """Unwrap the image's key into the HSM as ``label``; True if this call made it (False: it
        was already there from a run that died before its commit, with the same public key)."""
        existing = ctx.backend.find_ec_keypair(label)
        if existing is not None:
            if existing.public_point != ref.sb_pub:
                raise Problem(
                    409,
                    "secure-boot-key-exists",
                    "Board has another secure-boot key",
                    f"the HSM already holds a different key labelled {label}",
                )
            return False
        try:
            import_batch_key(
                ctx.backend,
                kek_label=ref.kek_label,
                wrapped_dek=ref.wrapped_dek,
                wrapped_key=ref.wrapped_key,
                public_point=ref.sb_pub,
                label=label,
            )
        except KeyNotFoundError:
            raise Problem(
                422,
                "batch-not-trusted",
                "Batch not trusted",
                f"the batch KEK {ref.kek_label!r} is not a key on this service's HSM",
            ) from None
        except UnwrapError:
            raise Problem(
                422,
                "batch-key-refused",
                "Batch key refused",
                f"batch image {ref.index}: the wrapped key does not unwrap to its public key",
            ) from None
        return True

    @router.get(
        "/boards/{uid}/secure-boot-key",
        response_model=SecureBootKey,
        responses=problem_responses(401, 403, 404, 422),
    )
    def get_secure_boot_key(uid: Uid, who: Operator) -> SecureBootKey:
        """The board's secure-boot public key, if it has been made."""
        uid, _ = _uid(uid)
        with ctx.sessions() as session:
            board = load_board(session, uid)
            if board.sb_public_der is None:
                raise Problem(
                    404, "no-secure-boot-key", "No secure-boot key", f"board {uid} has no secure-boot key"
                )
            return _sb_answer(uid, board.sb_public_der, created=False)

    # --- firmware -------------------------------------------------------------------------------

    @router.post(
        "/boards/{uid}/firmware",
        response_class=Response,
        responses={
            200: {
                "description": "Signed MCUboot image (docs/firmware-image.md)",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            **problem_responses(401, 403, 404, 409, 413, 415, 422, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "Raw Cortex-M firmware binary, or an unsigned MCUboot image",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def sign_firmware(
        uid: Uid,
        request: Request,
        who: Operator,
        version: Annotated[
            str | None,
            Query(max_length=40, description="MAJOR.MINOR.REVISION[+BUILD]; default from the input"),
        ] = None,
        header_size: Annotated[
            int, Query(ge=32, le=65536, description="MCUboot header size for raw input")
        ] = firmware.DEFAULT_HEADER_SIZE,
        load_address: Annotated[int, Query(ge=0, le=0xFFFFFFFF)] = 0,
        _key: IdempotencyKey = None,
    ) -> Response:
        """Sign firmware with the board's secure-boot key (HSM); returns the MCUboot image."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/octet-stream":
            raise Problem(
                415, "unsupported-media-type", "Unsupported media type", "send application/octet-stream"
            )
        data = await request.body()
        return await anyio.to_thread.run_sync(
            lambda: _sign_firmware(uid, data, who, version, header_size, load_address)
        )

    def _sign_firmware(
        uid: str, data: bytes, who: Principal, version: str | None, header_size: int, load_address: int
    ) -> Response:
        uid, _ = _uid(uid)
        with refusals_audited(who, "sign-firmware", uid):
            with ctx.sessions() as session:
                board = load_board(session, uid)
                require_state(board, BoardState.SECURE_BOOT_KEY, "firmware signing")
                label, public_der = board.sb_key_label, board.sb_public_der
            assert label is not None and public_der is not None
            if len(data) > ctx.config.max_firmware_bytes:
                raise Problem(
                    413,
                    "firmware-too-large",
                    "Firmware too large",
                    f"firmware is {len(data)} bytes; the limit is {ctx.config.max_firmware_bytes}",
                )
            try:
                signed = firmware.sign_image(
                    data,
                    public_key_der=public_der,
                    sign_digest=lambda digest: ctx.backend.sign_digest(label, digest),
                    version=firmware.ImageVersion.parse(version) if version else None,
                    header_size=header_size,
                    load_address=load_address,
                    max_size=ctx.config.max_firmware_bytes,
                )
            except firmware.FirmwareError as exc:
                raise Problem(422, "bad-firmware", "Firmware refused", str(exc)) from None
            with ctx.write() as session:
                board = load_board(session, uid)
                session.add(
                    FirmwareSigning(
                        uid=uid,
                        input_sha256=hashlib.sha256(data).hexdigest(),
                        image_sha256=signed.sha256.hex(),
                        size=len(signed.image),
                        version=str(signed.version),
                        signed_by=who.name,
                        at=_now(),
                    )
                )
                _advance(board, BoardState.FIRMWARE_SIGNED)
                _step(session, uid, BoardState.FIRMWARE_SIGNED.value, who, f"sha256 {signed.sha256.hex()}")
                audit.append(
                    session,
                    actor=who.name,
                    role=who.role.value,
                    action="sign-firmware",
                    subject=uid,
                    detail={
                        "image_sha256": signed.sha256.hex(),
                        "version": str(signed.version),
                        "size": len(data),
                    },
                )
        return Response(
            signed.image,
            media_type="application/octet-stream",
            headers={"X-Image-SHA256": signed.sha256.hex(), "X-Image-Version": str(signed.version)},
        )

    # --- key agreement --------------------------------------------------------------------------

    @router.post(
        "/boards/{uid}/key-agreement",
        response_model=KeyAgreementResponse,
        responses=problem_responses(401, 403, 404, 409, 422, 503),
    )
    def key_agreement(
        uid: Uid, body: KeyAgreementRequest, who: Operator, _key: IdempotencyKey = None
    ) -> KeyAgreementResponse:
        """Step 1-2 of docs/key-agreement.md: check board_sig, answer srv_eph, srv_sig, kc_server."""
        uid, raw_uid = _uid(uid)
        with board_locked(who, "key-agreement", uid):
            return _key_agreement(uid, raw_uid, body, who)

    def _key_agreement(
        uid: str, raw_uid: bytes, body: KeyAgreementRequest, who: Principal
    ) -> KeyAgreementResponse:
        board_eph = bytes.fromhex(body.board_eph)
        with ctx.sessions() as session:
            board = load_board(session, uid)
            if board.state == BoardState.KEY_AGREED.value:
                raise Problem(
                    409, "key-already-agreed", "Key already agreed", f"board {uid} already agreed its key"
                )
            require_state(board, BoardState.FIRMWARE_SIGNED, "key agreement")
            assert board.cert_der is not None and board.sb_key_label is not None
            cert = x509.load_der_x509_certificate(board.cert_der)
            sb_label = board.sb_key_label
            stale = (
                session.execute(
                    select(KeyAgreement).where(KeyAgreement.uid == uid, KeyAgreement.state == "pending")
                )
                .scalars()
                .all()
            )
            stale_labels = [k.aes_key_label for k in stale]
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), board_eph)
        except ValueError:
            raise Problem(
                422, "bad-board-eph", "Bad ephemeral key", "board_eph is not a point on P-256"
            ) from None
        identity = cert.public_key()
        assert isinstance(identity, ec.EllipticCurvePublicKey)
        try:
            identity.verify(
                raw_to_der(bytes.fromhex(body.board_sig)),
                BOARD_ECDH_PREFIX + raw_uid + board_eph,
                ec.ECDSA(hashes.SHA256()),
            )
        except (InvalidSignature, PkiError):
            raise Problem(
                422,
                "bad-board-signature",
                "Board signature invalid",
                "board_sig does not verify with the board certificate",
            ) from None

        session_id = secrets.token_hex(16)
        aes_label = f"nusec-aes-{uid}-{session_id[:16]}"
        eph = ctx.backend.generate_ephemeral_keypair()
        try:
            srv_eph = eph.public_point
            srv_sig = ctx.backend.sign_digest_raw(
                sb_label, hashlib.sha256(SERVER_ECDH_PREFIX + raw_uid + board_eph + srv_eph).digest()
            )
            aes = ctx.backend.ecdh_derive_aes(eph, board_eph, label=aes_label, persistent=True)
        finally:
            ctx.backend.destroy_ephemeral(eph)
        transcript = hashlib.sha256(raw_uid + board_eph + srv_eph).digest()
        kc_server = ctx.backend.aes_ecb_encrypt_block(
            aes, hashlib.sha256(KC_SERVER_PREFIX + transcript).digest()[:16]
        )
        with ctx.write() as session:
            for old in session.execute(
                select(KeyAgreement).where(KeyAgreement.uid == uid, KeyAgreement.state == "pending")
            ).scalars():
                old.state = "superseded"
            session.add(
                KeyAgreement(
                    id=session_id,
                    uid=uid,
                    board_eph=board_eph,
                    srv_eph=srv_eph,
                    transcript_hash=transcript,
                    aes_key_label=aes_label,
                    state="pending",
                    created_at=_now(),
                )
            )
            _step(session, uid, "key_agreement_started", who, f"session {session_id}")
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action="key-agreement",
                subject=uid,
                detail={"session": session_id, "srv_eph_sha256": hashlib.sha256(srv_eph).hexdigest()},
            )
        for label in stale_labels:  # keys of exchanges the board abandoned
            _destroy_secret(label)
        return KeyAgreementResponse(
            session_id=session_id, srv_eph=srv_eph.hex(), srv_sig=srv_sig.hex(), kc_server=kc_server.hex()
        )

    def _destroy_secret(label: str) -> None:
        key = ctx.backend.find_secret_key(label)
        if key is not None:
            ctx.backend.destroy_secret_key(key)

    @router.post(
        "/boards/{uid}/key-agreement/{session_id}/confirm",
        response_model=KeyConfirmResponse,
        responses=problem_responses(401, 403, 404, 409, 422, 503),
    )
    def confirm_key(
        uid: Uid, session_id: SessionId, body: KeyConfirmRequest, who: Operator, _key: IdempotencyKey = None
    ) -> KeyConfirmResponse:
        """Step 4: check kc_board inside the HSM; on success the board's AES key is agreed."""
        uid, _ = _uid(uid)
        with board_locked(who, "key-confirm", uid):
            return _confirm(uid, session_id, bytes.fromhex(body.kc_board), who)

    def _confirm(uid: str, session_id: str, kc_board: bytes, who: Principal) -> KeyConfirmResponse:
        with ctx.sessions() as session:
            load_board(session, uid)
            agreement = session.get(KeyAgreement, session_id)
            if agreement is None or agreement.uid != uid:
                raise Problem(
                    404, "no-key-agreement", "Unknown exchange", f"no key agreement {session_id} for {uid}"
                )
            if agreement.state == "confirmed":
                return KeyConfirmResponse(session_id=session_id, uid=uid, confirmed=True)
            if agreement.state != "pending":
                raise Problem(
                    409,
                    "key-agreement-closed",
                    "Exchange closed",
                    f"key agreement {session_id} is {agreement.state}",
                )
            label, transcript = agreement.aes_key_label, agreement.transcript_hash
        key = ctx.backend.find_secret_key(label)
        if key is None:
            raise Problem(
                409, "key-missing", "Key missing", f"the AES key of exchange {session_id} is not in the HSM"
            )
        expected = ctx.backend.aes_ecb_encrypt_block(
            key, hashlib.sha256(KC_BOARD_PREFIX + transcript).digest()[:16]
        )
        ok = hmac.compare_digest(expected, kc_board)
        with ctx.write() as session:
            agreement = session.get(KeyAgreement, session_id)
            board = load_board(session, uid)
            assert agreement is not None
            agreement.state = "confirmed" if ok else "failed"
            if ok:
                board.aes_key_label = label
                _advance(board, BoardState.KEY_AGREED)
                _step(session, uid, BoardState.KEY_AGREED.value, who, f"session {session_id}")
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action="key-confirm",
                subject=uid,
                outcome="ok" if ok else "refused",
                detail={"session": session_id},
            )
        if not ok:
            ctx.backend.destroy_secret_key(key)
            raise Problem(
                422,
                "key-confirmation-failed",
                "Key confirmation failed",
                "kc_board does not match: the key is discarded",
            )
        return KeyConfirmResponse(session_id=session_id, uid=uid, confirmed=True)

    # --- audit (admin) --------------------------------------------------------------------------

    @router.get("/audit", response_model=AuditPage, responses=problem_responses(401, 403, 422))
    def read_audit(
        who: Admin,
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        """Audit rows with seq > ``after``, oldest first (admin only)."""
        with ctx.sessions() as session:
            rows = (
                session.execute(
                    select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(limit)
                )
                .scalars()
                .all()
            )
            entries = [AuditEntry(**audit.to_json(r)) for r in rows]
        return AuditPage(entries=entries, next_after=entries[-1].seq if len(entries) == limit else None)

    @router.get("/audit/verify", response_model=AuditVerification, responses=problem_responses(401, 403))
    def verify_audit(who: Admin) -> AuditVerification:
        """Recompute the audit hash chain (admin only)."""
        with ctx.sessions() as session:
            report = audit.verify_chain(session)
        return AuditVerification(
            ok=report.ok, rows=report.rows, first_bad_seq=report.first_bad_seq, reason=report.reason
        )

    return router
