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

from pki import keyagreement
from pki.errors import PkiError
from pki.service import audit
from pki.service.auth import Principal
from pki.service.context import ServiceContext
from pki.service.models import KeyAgreement
from pki.service.problems import Problem, problem_responses
from pki.service.routes.common import (
    Ctx,
    IdempotencyKey,
    Operator,
    SessionId,
    Uid,
    add_step,
    advance,
    board_locked,
    load_board,
    now,
    parse_uid,
    require_state,
    resource_router,
)
from pki.service.schemas import (
    BoardState,
    KeyAgreementRequest,
    KeyAgreementResponse,
    KeyConfirmRequest,
    KeyConfirmResponse,
)
from pki.signature import raw_to_der

router = resource_router()


@router.post(
    "/boards/{uid}/key-agreement",
    response_model=KeyAgreementResponse,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
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
            keyagreement.board_message(raw_uid, board_eph),
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
            sb_label, keyagreement.server_digest(raw_uid, board_eph, srv_eph)
        )
        aes = ctx.backend.ecdh_derive_aes(eph, board_eph, label=aes_label, persistent=True)
    finally:
        ctx.backend.destroy_ephemeral(eph)
    transcript = keyagreement.transcript(raw_uid, board_eph, srv_eph)
    kc_server = ctx.backend.aes_ecb_encrypt_block(aes, keyagreement.kc_server_block(transcript))
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
                created_at=now(),
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
    for label in stale_labels:  # keys of exchanges the board abandoned
        _destroy_secret(ctx, label)
    return KeyAgreementResponse(
        session_id=session_id, srv_eph=srv_eph.hex(), srv_sig=srv_sig.hex(), kc_server=kc_server.hex()
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
    """Step 4: check kc_board inside the HSM; on success the board's AES key is agreed."""
    uid, _ = parse_uid(uid)
    with board_locked(ctx, who, "key-confirm", uid):
        return _confirm(ctx, uid, session_id, bytes.fromhex(body.kc_board), who)


def _confirm(
    ctx: ServiceContext, uid: str, session_id: str, kc_board: bytes, who: Principal
) -> KeyConfirmResponse:
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
    expected = ctx.backend.aes_ecb_encrypt_block(key, keyagreement.kc_board_block(transcript))
    ok = hmac.compare_digest(expected, kc_board)
    with ctx.write() as session:
        agreement = session.get(KeyAgreement, session_id)
        board = load_board(session, uid)
        assert agreement is not None
        agreement.state = "confirmed" if ok else "failed"
        if ok:
            board.aes_key_label = label
            advance(board, BoardState.KEY_AGREED)
            add_step(session, uid, BoardState.KEY_AGREED.value, who, f"session {session_id}")
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
