"""/v1/boards/{uid}/secure-boot-key: make the board's secure-boot key pair in the HSM, or import it
from a sealed bulk OTP batch image (docs/otp-batch.md); read its public key back."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pki.ecpoint import point_of
from pki.errors import KeyNotFoundError, UnwrapError
from pki.hsm import KeyPolicy
from pki.hsm.batch_import import import_batch_key
from pki.service import audit
from pki.service.auth import Principal
from pki.service.batch_keys import BatchKeyRef, check_batch_import
from pki.service.board_states import Op
from pki.service.context import ServiceContext
from pki.service.models import BoardProgress
from pki.service.problems import Problem, problem_responses
from pki.service.routes.common import (
    Ctx,
    IdempotencyKey,
    Operator,
    Uid,
    add_step,
    board_for,
    board_locked,
    check_quota,
    move,
    parse_uid,
    resource_router,
)
from pki.service.schemas import BoardState, SecureBootKey, SecureBootKeyImport

router = resource_router()


def sb_label(uid: str) -> str:
    return f"nusec-sb-{uid}"


def sb_answer(uid: str, der: bytes, created: bool) -> SecureBootKey:
    public = serialization.load_der_public_key(der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    point = point_of(public)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SecureBootKey(uid=uid, public_key_pem=pem.decode(), public_xy_hex=point[1:].hex(), created=created)


@router.post(
    "/boards/{uid}/secure-boot-key",
    response_model=SecureBootKey,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
)
def make_secure_boot_key(uid: Uid, ctx: Ctx, who: Operator, _key: IdempotencyKey = None) -> SecureBootKey:
    """Make the board's secure-boot key pair in the HSM (first call) or return its public key."""
    uid, _ = parse_uid(uid)
    with board_locked(ctx, who, "secure-boot-key", uid):
        with ctx.sessions() as session:
            board = board_for(ctx, session, who, uid, Op.SECURE_BOOT_KEY)
            if board.sb_public_der is not None:
                return sb_answer(uid, board.sb_public_der, created=False)
            check_quota(ctx, session, who, "HSM keys")
        label = sb_label(uid)
        existing = ctx.backend.find_ec_keypair(label)  # left by a run that died before commit
        info = existing or ctx.backend.generate_ec_keypair(label, policy=KeyPolicy())
        der = info.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            with ctx.write() as session:
                board = board_for(ctx, session, who, uid, Op.SECURE_BOOT_KEY)
                check_quota(ctx, session, who, "HSM keys")  # again, exact: under the append lock
                board.sb_key_label = label
                board.sb_public_der = der
                move(board, Op.SECURE_BOOT_KEY)
                add_step(session, uid, BoardState.SECURE_BOOT_KEY.value, who)
                audit.append(
                    session,
                    actor=who.name,
                    role=who.role.value,
                    action="secure-boot-key",
                    subject=uid,
                    detail={"label": label, "public_sha256": hashlib.sha256(der).hexdigest()},
                )
        except Problem:
            if existing is None:  # nothing records the key this call made: it must not stay
                ctx.backend.destroy_keypair(label)
            raise
        return sb_answer(uid, der, created=True)


@router.post(
    "/boards/{uid}/secure-boot-key/import",
    response_model=SecureBootKey,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
)
def import_secure_boot_key(
    uid: Uid, body: SecureBootKeyImport, ctx: Ctx, who: Operator, _key: IdempotencyKey = None
) -> SecureBootKey:
    """Import the board's secure-boot key from a sealed bulk OTP batch image into the HSM
    (unwrapped inside the HSM only); same answer as POST /secure-boot-key."""
    uid, raw_uid = parse_uid(uid)
    with board_locked(ctx, who, "secure-boot-key-import", uid):
        return _import_sb_key(ctx, uid, raw_uid, body, who)


def _import_sb_key(
    ctx: ServiceContext, uid: str, raw_uid: bytes, body: SecureBootKeyImport, who: Principal
) -> SecureBootKey:
    with ctx.sessions() as session:
        board = board_for(ctx, session, who, uid, Op.SECURE_BOOT_KEY)
        current_der, current_ref = board.sb_public_der, board.sb_batch_ref
        if current_der is None:
            check_quota(ctx, session, who, "HSM keys")
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
            return sb_answer(uid, der, created=False)
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
            409, "batch-image-taken", "Batch image taken", f"batch image {ref.index} belongs to board {other}"
        )
    label = sb_label(uid)
    imported = _import_into_hsm(ctx, label, ref)
    try:
        with ctx.write() as session:
            board = board_for(ctx, session, who, uid, Op.SECURE_BOOT_KEY)
            check_quota(ctx, session, who, "HSM keys")  # again, exact: under the append lock
            board.sb_key_label = label
            board.sb_public_der = der
            board.sb_batch_ref = ref.ref
            move(board, Op.SECURE_BOOT_KEY)
            add_step(session, uid, BoardState.SECURE_BOOT_KEY.value, who, ref.ref)
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
    except Problem:
        if imported:
            ctx.backend.destroy_keypair(label)
        raise
    except IntegrityError:  # another board took the same image between the check and now
        if imported:
            ctx.backend.destroy_keypair(label)
        raise Problem(
            409, "batch-image-taken", "Batch image taken", f"batch image {ref.index} belongs to another board"
        ) from None
    return sb_answer(uid, der, created=True)


def _import_into_hsm(ctx: ServiceContext, label: str, ref: BatchKeyRef) -> bool:
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
def get_secure_boot_key(uid: Uid, ctx: Ctx, who: Operator) -> SecureBootKey:
    """The board's secure-boot public key, once made (in every later state, revoked too)."""
    uid, _ = parse_uid(uid)
    with ctx.sessions() as session:
        board = board_for(ctx, session, who, uid, Op.GET_SECURE_BOOT_KEY)
        assert board.sb_public_der is not None
        return sb_answer(uid, board.sb_public_der, created=False)
