"""/v1/boards/{uid}/key-agreement: the service's half of the authenticated ECDH exchange
(docs/key-agreement.md) and its key confirmation; Z and AES_NuLink3 exist only in the HSM."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from nucore import NativeError
from nucore.p256 import signature_to_der
from pki import keyagreement
from pki.service import audit
from pki.service.auth import Principal
from pki.service.board_states import Op
from pki.service.context import ServiceContext
from pki.service.models import BoardProgress, KeyAgreement
from pki.service.problems import Problem, problem_responses
from pki.service.routes.common import (
    Admin,
    Ctx,
    IdempotencyKey,
    Operator,
    SessionId,
    Uid,
    add_step,
    board_for,
    board_locked,
    check_quota,
    move,
    now,
    owned_board,
    parse_uid,
    resource_router,
    status_of,
)
from pki.service.schemas import (
    AdminReason,
    BoardState,
    BoardStatus,
    KeyAgreementRequest,
    KeyAgreementResponse,
    KeyConfirmRequest,
    KeyConfirmResponse,
)

router = resource_router()


@router.post(
    "/boards/{uid}/key-agreement",
    response_model=KeyAgreementResponse,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
)
def key_agreement(
    uid: Uid, body: KeyAgreementRequest, ctx: Ctx, who: Operator, _key: IdempotencyKey = None
) -> KeyAgreementResponse:
    """Step 1-2 of docs/key-agreement.md: check board_sig, answer srv_eph, srv_sig, kc_server."""
    uid, raw_uid = parse_uid(uid)
    with board_locked(ctx, who, "key-agreement", uid):
        return _key_agreement(ctx, uid, raw_uid, body, who)


def _key_agreement(
    ctx: ServiceContext, uid: str, raw_uid: bytes, body: KeyAgreementRequest, who: Principal
) -> KeyAgreementResponse:
    board_eph = bytes.fromhex(body.board_eph)
    with ctx.sessions() as session:
        board = board_for(ctx, session, who, uid, Op.KEY_AGREEMENT)
        _refuse_if_locked(board)
        assert board.cert_der is not None and board.sb_key_label is not None
        cert = x509.load_der_x509_certificate(board.cert_der)
        sb_label = board.sb_key_label
        seen = session.execute(
            select(KeyAgreement.id).where(KeyAgreement.uid == uid, KeyAgreement.board_eph == board_eph)
        ).first()
        if seen is not None:
            raise Problem(
                409,
                "board-half-replayed",
                "Board half replayed",
                "this board_eph was already used in an exchange: the board makes a fresh one each time",
            )
        pending = _pending(session, uid)
        others = [k for k in pending if k.opened_by != who.name]
        if others:
            raise Problem(
                409,
                "key-agreement-pending",
                "Exchange pending",
                f"board {uid} has an exchange opened by another operator; it must finish or be reset",
            )
        stale_labels = [k.aes_key_label for k in pending]
        check_quota(ctx, session, who, "HSM keys")
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
            signature_to_der(bytes.fromhex(body.board_sig)),
            keyagreement.board_message(raw_uid, board_eph),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, NativeError):
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
            sb_label, keyagreement.server_digest(raw_uid, board_eph, srv_eph)
        )
        aes = ctx.backend.ecdh_derive_aes(eph, board_eph, label=aes_label, persistent=True)
    finally:
        ctx.backend.destroy_ephemeral(eph)
    transcript = keyagreement.transcript(raw_uid, board_eph, srv_eph)
    kc_server = ctx.backend.aes_ecb_encrypt_block(aes, keyagreement.kc_server_block(transcript))
    try:
        with ctx.write() as session:
            board_for(ctx, session, who, uid, Op.KEY_AGREEMENT)
            check_quota(ctx, session, who, "HSM keys")  # again, exact: under the append lock
            for old in _pending(session, uid):  # the same operator's earlier, unfinished exchange
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
                    created_at=now(),
                    opened_by=who.name,
                )
            )
            add_step(session, uid, "key_agreement_started", who, f"session {session_id}")
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action="key-agreement",
                subject=uid,
                detail={"session": session_id, "srv_eph_sha256": hashlib.sha256(srv_eph).hexdigest()},
            )
    except BaseException:
        ctx.backend.destroy_secret_key(aes)
        raise
    for label in stale_labels:  # keys of exchanges the board abandoned
        _destroy_secret(ctx, label)
    return KeyAgreementResponse(
        session_id=session_id, srv_eph=srv_eph.hex(), srv_sig=srv_sig.hex(), kc_server=kc_server.hex()
    )


def _pending(session: Session, uid: str) -> list[KeyAgreement]:
    query = select(KeyAgreement).where(KeyAgreement.uid == uid, KeyAgreement.state == "pending")
    return list(session.execute(query).scalars())


def _refuse_if_locked(board: BoardProgress) -> None:
    if board.ka_locked:
        raise Problem(
            409,
            "key-agreement-locked",
            "Key agreement locked",
            f"board {board.uid}: too many wrong key confirmations; an admin must reset key agreement",
        )


def _destroy_secret(ctx: ServiceContext, label: str) -> None:
    key = ctx.backend.find_secret_key(label)
    if key is not None:
        ctx.backend.destroy_secret_key(key)


@router.post(
    "/boards/{uid}/key-agreement/{session_id}/confirm",
    response_model=KeyConfirmResponse,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def confirm_key(
    uid: Uid,
    session_id: SessionId,
    body: KeyConfirmRequest,
    ctx: Ctx,
    who: Operator,
    _key: IdempotencyKey = None,
) -> KeyConfirmResponse:
    """Step 4: check kc_board inside the HSM; on success the board's AES key is agreed. Single use:
    a wrong kc_board closes the exchange; after too many the board's key agreement is locked."""
    uid, _ = parse_uid(uid)
    with board_locked(ctx, who, "key-confirm", uid):
        return _confirm(ctx, uid, session_id, bytes.fromhex(body.kc_board), who)


def _confirm(
    ctx: ServiceContext, uid: str, session_id: str, kc_board: bytes, who: Principal
) -> KeyConfirmResponse:
    with ctx.sessions() as session:
        board = board_for(ctx, session, who, uid, Op.KEY_CONFIRM)
        _refuse_if_locked(board)
        agreement = session.get(KeyAgreement, session_id)
        if agreement is None or agreement.uid != uid:
            raise Problem(
                404, "no-key-agreement", "Unknown exchange", f"no key agreement {session_id} for {uid}"
            )
        if agreement.opened_by != who.name:
            raise Problem(
                403,
                "not-exchange-owner",
                "Not your exchange",
                f"key agreement {session_id} was opened by another operator",
            )
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
    expected = ctx.backend.aes_ecb_encrypt_block(key, keyagreement.kc_board_block(transcript))
    ok = hmac.compare_digest(expected, kc_board)
    with ctx.write() as session:
        agreement = session.get(KeyAgreement, session_id)
        board = board_for(ctx, session, who, uid, Op.KEY_CONFIRM)
        assert agreement is not None and agreement.state == "pending"
        agreement.state = "confirmed" if ok else "failed"
        if ok:
            board.aes_key_label = label
            move(board, Op.KEY_CONFIRM)
            add_step(session, uid, BoardState.KEY_AGREED.value, who, f"session {session_id}")
        else:
            board.ka_failures = (board.ka_failures or 0) + 1
            board.ka_locked = board.ka_failures >= ctx.config.max_key_confirm_failures
            add_step(session, uid, "key_confirmation_failed", who, f"session {session_id}")
        audit.append(
            session,
            actor=who.name,
            role=who.role.value,
            action="key-confirm",
            subject=uid,
            outcome="ok" if ok else "refused",
            detail={"session": session_id}
            if ok
            else {"session": session_id, "failures": board.ka_failures, "locked": board.ka_locked},
        )
        locked = bool(board.ka_locked)
    if not ok:
        ctx.backend.destroy_secret_key(key)
        raise Problem(
            422,
            "key-confirmation-failed",
            "Key confirmation failed",
            "kc_board does not match: the exchange is closed and its key discarded"
            + ("; key agreement for this board is now locked" if locked else ""),
        )
    return KeyConfirmResponse(session_id=session_id, uid=uid, confirmed=True)


@router.post(
    "/boards/{uid}/key-agreement/reset",
    response_model=BoardStatus,
    responses=problem_responses(401, 403, 404, 409, 422),
)
def reset_key_agreement(
    uid: Uid, body: AdminReason, ctx: Ctx, who: Admin, _key: IdempotencyKey = None
) -> BoardStatus:
    """Admin only: unlock key agreement after too many wrong confirmations (audited, with reason);
    any pending exchange is closed and its key destroyed."""
    uid, _ = parse_uid(uid)
    with board_locked(ctx, who, "key-agreement-reset", uid):
        with ctx.write() as session:
            board = owned_board(session, who, uid, changes=True)
            pending = _pending(session, uid)
            for old in pending:
                old.state = "superseded"
            failures = board.ka_failures
            board.ka_failures = 0
            board.ka_locked = False
            board.updated_at = now()
            add_step(session, uid, "key_agreement_reset", who, body.reason)
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action="key-agreement-reset",
                subject=uid,
                detail={"reason": body.reason, "failures": failures},
            )
            session.flush()
            labels = [k.aes_key_label for k in pending]
            answer = status_of(session, board)
        for label in labels:
            _destroy_secret(ctx, label)
        return answer
