"""/v1/boards/{uid}/certificate: issue the board identity certificate from its CSR, read it back."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from pki import store
from pki.ca import BOARD_IDENTITY, issue_board_certificate_from_csr, load_csr
from pki.service import audit
from pki.service.auth import Principal
from pki.service.context import ServiceContext
from pki.service.models import BoardProgress, BoardStep
from pki.service.problems import Problem, problem_responses
from pki.service.routes.common import (
    Ctx,
    IdempotencyKey,
    Operator,
    Uid,
    add_step,
    advance,
    board_locked,
    load_board,
    parse_uid,
    pem,
    resource_router,
)
from pki.service.schemas import BoardCertificate, BoardState, CertificateRequest, ReportedStep

router = resource_router()


@router.post(
    "/boards/{uid}/certificate",
    response_model=BoardCertificate,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def certify(
    uid: Uid, body: CertificateRequest, ctx: Ctx, who: Operator, _key: IdempotencyKey = None
) -> BoardCertificate:
    """Issue the board identity certificate from its CSR (policy: pki.ca). Same CSR, same certificate."""
    uid, raw_uid = parse_uid(uid)
    with board_locked(ctx, who, "certify", uid):
        return _certify(ctx, uid, raw_uid, body.csr_pem, who)


def _certify(ctx: ServiceContext, uid: str, raw_uid: bytes, csr_pem: str, who: Principal) -> BoardCertificate:
    csr = load_csr(csr_pem.encode())
    csr_sha = hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest()
    with ctx.sessions() as session:
        board = load_board(session, uid)
        if board.cert_der is not None and board.csr_sha256 == csr_sha:
            return cert_answer(ctx, uid, board)
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
    cert = issue_board_certificate_from_csr(ctx.issuer, csr, raw_uid, organization=ctx.config.organization)
    with ctx.write() as session:
        board = load_board(session, uid)
        reissue = board.cert_serial
        if reissue is not None:  # the board made a new key before its certificate reached OTP
            store.revoke_certificate(session, int(reissue, 16), reason=x509.ReasonFlags.superseded)
        store.record_certificate(session, cert, BOARD_IDENTITY.name, raw_uid)
        board.cert_der = cert.public_bytes(serialization.Encoding.DER)
        board.cert_serial = format(cert.serial_number, "x")
        board.csr_sha256 = csr_sha
        advance(board, BoardState.CERTIFIED)
        add_step(session, uid, BoardState.CERTIFIED.value, who, f"serial {board.cert_serial}")
        audit.append(
            session,
            actor=who.name,
            role=who.role.value,
            action="certify",
            subject=uid,
            detail={"serial": board.cert_serial, "replaces": reissue},
        )
        return cert_answer(ctx, uid, board)


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
    """The board's current identity certificate."""
    uid, _ = parse_uid(uid)
    with ctx.sessions() as session:
        board = load_board(session, uid)
        if board.cert_der is None:
            raise Problem(404, "no-certificate", "No certificate", f"board {uid} has no certificate yet")
        return cert_answer(ctx, uid, board)
