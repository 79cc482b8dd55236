"""Drive a board through the live service, step by step, as the desktop would (tests only).

``BoardRun`` keeps what the board side knows (its ``Board`` model, the secure-boot public key);
``drive_to`` brings a fresh board to any state of the server-side state machine by the seed
sequence's own calls, and ``OPERATIONS`` performs each operation of the state table once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.ca import Issuer, Role
from pki.service.credentials import ClientCredentials, issue_client_credentials
from pki.service.schemas import STATE_ORDER, BoardState
from tests.service.board import Board
from tests.service.client import ServiceClient
from tests.service.conftest import ICA_LABEL, Pki
from tests.service.firmware_util import cortex_m_firmware


@dataclass
class BoardRun:
    operator: ServiceClient
    admin: ServiceClient
    board: Board = field(default_factory=Board)
    sb_pub: ec.EllipticCurvePublicKey | None = None

    @property
    def uid(self) -> str:
        return self.board.uid_hex

    def state(self) -> str:
        return str(self.operator.status(self.uid)["state"])

    def report(self, step: str) -> httpx.Response:
        return self.operator.post(f"/v1/boards/{self.uid}/steps", {"step": step})

    def begin_ecdh(self, client: ServiceClient | None = None) -> tuple[httpx.Response, Callable[[], bytes]]:
        """POST the board's half; returns the answer and a function computing the right kc_board."""
        eph, board_eph, board_sig = self.board.start_ecdh()
        body = {"board_eph": board_eph.hex(), "board_sig": board_sig.hex()}
        response = (client or self.operator).post(f"/v1/boards/{self.uid}/key-agreement", body)

        def kc_board() -> bytes:
            answer = response.json()
            assert self.sb_pub is not None
            _, kc_server, kc = self.board.finish_ecdh(
                eph,
                board_eph,
                bytes.fromhex(answer["srv_eph"]),
                bytes.fromhex(answer["srv_sig"]),
                self.sb_pub,
            )
            assert kc_server.hex() == answer["kc_server"]
            return kc

        return response, kc_board

    def confirm(
        self, session_id: str, kc_board: bytes, client: ServiceClient | None = None
    ) -> httpx.Response:
        return (client or self.operator).confirm(self.uid, session_id, kc_board)

    def agree(self) -> None:
        response, kc_board = self.begin_ecdh()
        assert response.status_code == 200, response.text
        confirmed = self.confirm(response.json()["session_id"], kc_board())
        assert confirmed.status_code == 200, confirmed.text

    def make_secure_boot_key(self) -> httpx.Response:
        response = self.operator.post(f"/v1/boards/{self.uid}/secure-boot-key")
        if response.status_code == 200:
            public = serialization.load_pem_public_key(response.json()["public_key_pem"].encode())
            assert isinstance(public, ec.EllipticCurvePublicKey)
            self.sb_pub = public
        return response


def _ok(response: httpx.Response) -> None:
    assert response.status_code in (200, 201), response.text


#: How a board reaches each state: the step that follows the previous state (seed order).
STEPS: dict[BoardState, Callable[[BoardRun], None]] = {
    BoardState.REGISTERED: lambda run: _ok(run.operator.post("/v1/boards", {"uid": run.uid})),
    BoardState.CERTIFIED: lambda run: _ok(
        run.operator.post(f"/v1/boards/{run.uid}/certificate", {"csr_pem": run.board.csr_pem()})
    ),
    BoardState.CERT_WRITTEN: lambda run: _ok(run.report("cert_written")),
    BoardState.SECURE_BOOT_KEY: lambda run: _ok(run.make_secure_boot_key()),
    BoardState.FIRMWARE_SIGNED: lambda run: _ok(run.operator.sign_firmware(run.uid, cortex_m_firmware())),
    BoardState.OTP_WRITTEN: lambda run: _ok(run.report("otp_written")),
    BoardState.LOCKED: lambda run: _ok(run.report("locked")),
    BoardState.KEY_AGREED: lambda run: run.agree(),
}


def drive_to(state: BoardState, operator: ServiceClient, admin: ServiceClient) -> BoardRun:
    """A fresh board brought to ``state`` by the seed sequence's calls."""
    run = BoardRun(operator, admin)
    for step in STATE_ORDER[: STATE_ORDER.index(state) + 1]:
        STEPS[step](run)
    assert run.state() == state.value
    return run


def _new_key_csr(run: BoardRun) -> str:
    run.board.identity = ec.generate_private_key(ec.SECP256R1())
    return run.board.csr_pem()


def _confirm_op(run: BoardRun) -> httpx.Response:
    """Confirm a fresh exchange with the right kc_board when one can be opened; else a made-up
    session (the state decides before the session is looked up)."""
    opened, kc_board = run.begin_ecdh()
    if opened.status_code != 200:
        return run.confirm(secrets.token_hex(16), bytes(16))
    return run.confirm(opened.json()["session_id"], kc_board())


#: Each operation of the state table (pki.service.board_states.Op values), performed once.
OPERATIONS: dict[str, Callable[[BoardRun], httpx.Response]] = {
    "register": lambda run: run.operator.post("/v1/boards", {"uid": run.uid}),
    "status": lambda run: run.operator.http.get(f"/v1/boards/{run.uid}"),
    "certify": lambda run: run.operator.post(
        f"/v1/boards/{run.uid}/certificate", {"csr_pem": _new_key_csr(run)}
    ),
    "reissue": lambda run: run.admin.post(
        f"/v1/boards/{run.uid}/certificate/reissue",
        {"csr_pem": _new_key_csr(run), "reason": "KeyGen re-run after a power cut"},
    ),
    "get-certificate": lambda run: run.operator.http.get(f"/v1/boards/{run.uid}/certificate"),
    "secure-boot-key": lambda run: run.make_secure_boot_key(),
    "get-secure-boot-key": lambda run: run.operator.http.get(f"/v1/boards/{run.uid}/secure-boot-key"),
    "sign-firmware": lambda run: run.operator.sign_firmware(run.uid, cortex_m_firmware()),
    "key-agreement": lambda run: run.begin_ecdh()[0],
    "key-confirm": _confirm_op,
    "report-cert-written": lambda run: run.report("cert_written"),
    "report-otp-written": lambda run: run.report("otp_written"),
    "report-firmware-written": lambda run: run.report("firmware_written"),
    "report-locked": lambda run: run.report("locked"),
    "report-other": lambda run: run.report("firmware_verified"),
}


def operator_credentials(pki: Pki, name: str) -> ClientCredentials:
    """Another operator's client certificate (CN ``name``), issued by the test PKI's ICA."""
    ica_cert = x509.load_pem_x509_certificate(pki.ica_pem.read_bytes())
    root_cert = x509.load_pem_x509_certificate(pki.root_pem.read_bytes())
    with pki.token.open_backend() as backend:
        return issue_client_credentials(
            Issuer(backend, ICA_LABEL, ica_cert),
            root_cert,
            pki.dir / name,
            name=name,
            role=Role.OPERATOR,
            stem=name,
        )
