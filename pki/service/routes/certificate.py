"""/v1/boards/{uid}/certificate: issue the board identity certificate from its CSR, read it back."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from pki import store
from pki.ca import BOARD_IDENTITY, issue_board_certificate_from_csr, load_csr
from pki.service import audit
from pki.service.board_states import Op
from pki.service.context import ServiceContext
from pki.service.models import BoardProgress
from pki.service.problems import Problem, problem_responses
from pki.service.routes.common import (
    Admin,
    Ctx,
    IdempotencyKey,
    Operator,
    Uid,
    add_step,
    board_for,
    board_locked,
    move,
    now,
    owned_board,
    parse_uid,
    pem,
    resource_router,
)
from pki.service.schemas import BoardCertificate, BoardState, CertificateRequest, ReissueRequest

router = resource_router()


@router.post(
    "/boards/{uid}/certificate",
    response_model=BoardCertificate,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def certify(
    uid: Uid, body: CertificateRequest, ctx: Ctx, who: Operator, _key: IdempotencyKey = None
) -> BoardCertificate:
    """Issue the board's one identity certificate from its CSR (policy: pki.ca). The same key
    again gets the same certificate; another key is refused (an admin may re-issue, below)."""
    uid, raw_uid = parse_uid(uid)
    with board_locked(ctx, who, "certify", uid):
        csr = load_csr(body.csr_pem.encode())
        with ctx.sessions() as session:
            board = owned_board(session, who, uid, changes=True)
            if board.cert_der is not None and _same_key(board.cert_der, csr):
                return cert_answer(ctx, uid, board)
            board_for(ctx, session, who, uid, Op.CERTIFY)
            refuse_compromised_key(session, csr)
        cert = issue_board_certificate_from_csr(
            ctx.issuer, csr, raw_uid, organization=ctx.config.organization
        )
        with ctx.write() as session:
            board = board_for(ctx, session, who, uid, Op.CERTIFY)
            _record(session, board, cert, csr)
            move(board, Op.CERTIFY)
            add_step(session, uid, BoardState.CERTIFIED.value, who, f"serial {board.cert_serial}")
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action="certify",
                subject=uid,
                detail={"serial": board.cert_serial},
            )
            return cert_answer(ctx, uid, board)


@router.post(
    "/boards/{uid}/certificate/reissue",
    response_model=BoardCertificate,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def reissue(
    uid: Uid, body: ReissueRequest, ctx: Ctx, who: Admin, _key: IdempotencyKey = None
) -> BoardCertificate:
    """Admin only: certify a new key for the board and revoke its certificate (superseded), with a
    reason in the audit log. Never once the board has a secure-boot key (state table)."""
    uid, raw_uid = parse_uid(uid)
    with board_locked(ctx, who, "reissue", uid):
        csr = load_csr(body.csr_pem.encode())
        with ctx.sessions() as session:
            board = board_for(ctx, session, who, uid, Op.REISSUE)
            assert board.cert_der is not None
            if _same_key(board.cert_der, csr):
                raise Problem(
                    409,
                    "already-certified",
                    "Board already certified",
                    f"board {uid} already has a certificate for this key; re-issue needs a new key",
                )
            refuse_compromised_key(session, csr)
        cert = issue_board_certificate_from_csr(
            ctx.issuer, csr, raw_uid, organization=ctx.config.organization
        )
        with ctx.write() as session:
            board = board_for(ctx, session, who, uid, Op.REISSUE)
            old = board.cert_serial
            assert old is not None
            store.revoke_certificate(session, int(old, 16), reason=x509.ReasonFlags.superseded)
            _record(session, board, cert, csr)
            board.updated_at = now()
            add_step(
                session, uid, "reissued", who, f"serial {board.cert_serial} replaces {old}: {body.reason}"
            )
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action="reissue",
                subject=uid,
                detail={"serial": board.cert_serial, "replaces": old, "reason": body.reason},
            )
            return cert_answer(ctx, uid, board)


def _record(
    session: Session, board: BoardProgress, cert: x509.Certificate, csr: x509.CertificateSigningRequest
) -> None:
    store.record_certificate(session, cert, BOARD_IDENTITY.name, bytes.fromhex(board.uid))
    board.cert_der = cert.public_bytes(serialization.Encoding.DER)
    board.cert_serial = format(cert.serial_number, "x")
    board.csr_sha256 = hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest()


def _spki(public_key: object) -> bytes:
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _same_key(cert_der: bytes, csr: x509.CertificateSigningRequest) -> bool:
    return _spki(x509.load_der_x509_certificate(cert_der).public_key()) == _spki(csr.public_key())


def refuse_compromised_key(session: Session, csr: x509.CertificateSigningRequest) -> None:
    """422 if the CSR's key is one a certificate was revoked for with reason keyCompromise
    (compared by SPKI SHA-256; such a key is refused for ever, for any board)."""
    wanted = hashlib.sha256(_spki(csr.public_key())).digest()
    compromised = session.execute(
        select(store.IssuedCertificate.der)
        .join(store.Revocation, store.Revocation.certificate_id == store.IssuedCertificate.id)
        .where(store.Revocation.reason == x509.ReasonFlags.key_compromise.value)
    ).scalars()
    for der in compromised:
        public = x509.load_der_x509_certificate(der).public_key()
        if isinstance(public, ec.EllipticCurvePublicKey) and hashlib.sha256(_spki(public)).digest() == wanted:
            raise Problem(
                422,
                "key-compromised",
                "Key compromised",
                "this key was revoked for keyCompromise: it is never certified again",
            )


def cert_answer(ctx: ServiceContext, uid: str, board: BoardProgress) -> BoardCertificate:
    assert board.cert_der is not None and board.cert_serial is not None
    cert = x509.load_der_x509_certificate(board.cert_der)
    return BoardCertificate(
        uid=uid,
        serial=board.cert_serial,
        certificate_pem=pem(cert),
        chain_pem=pem(ctx.ica_cert) + pem(ctx.root_cert),
    )


@router.get(
    "/boards/{uid}/certificate",
    response_model=BoardCertificate,
    responses=problem_responses(401, 403, 404, 422),
)
def get_certificate(uid: Uid, ctx: Ctx, who: Operator) -> BoardCertificate:
    """The board's current identity certificate (in every state, revoked too)."""
    uid, _ = parse_uid(uid)
    with ctx.sessions() as session:
        return cert_answer(ctx, uid, board_for(ctx, session, who, uid, Op.GET_CERTIFICATE))
