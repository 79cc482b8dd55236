"""``--mode batch`` end to end: simulated boards provisioned from a bulk OTP batch built by
``nusec.otp_batch`` against the service's own SoftHSM2 token, through the real service (HTTPS, mutual
TLS), which imports each claimed image's key into its HSM and signs the firmware with it.

Oracles: the batch manifest (public keys) and claims database, the batch images themselves, openssl
verify, imgtool verify, the service's status and the board's state file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nucore import otp
from nusec.otp_batch import ensure_batch_keys, read_batch_info, read_image, read_line
from nusec.provision import client as client_mod
from nusec.provision import flow
from nusec.provision.client import TlsConfig
from nusec.provision.otp_writer import ProgramLog
from nusec.provision.report import ProvisionResult
from nusec.provision.steps import STEP_IDS
from nusec.sim.board import board_uid
from pki.service.server import ServiceHandle
from tests.provision.conftest import FIRMWARE, BoardFile
from tests.provision.helpers import assert_imgtool_verifies, assert_openssl_verifies, service_state
from tests.service.conftest import BATCH_KEK, BATCH_SIGNER, Pki, build_test_batch, running_service

BLANK_UID = b"\xff" * 12
BOARD_CERT_ENTRIES = set(otp.FIELDS["board_cert"].entries)


class Killed(BaseException):
    """Stands for the process dying."""


@pytest.fixture(scope="module")
def service(pki_files: Pki) -> Iterator[ServiceHandle]:
    """The batch KEK and seal signer are made in the service's token before it starts."""
    with pki_files.token.open_backend() as backend:
        ensure_batch_keys(backend, BATCH_KEK, BATCH_SIGNER)
    with running_service(pki_files) as handle:
        yield handle


def _run(service: ServiceHandle, tls: TlsConfig, journal: Path, probe: str, batch: Path) -> ProvisionResult:
    return flow.provision_board(probe, service.url, FIRMWARE, tls, journal, mode="batch", batch_dir=batch)


def _claims(batch: Path) -> dict[str, int]:
    db = sqlite3.connect(batch / "claims.sqlite")
    try:
        return {uid.upper(): idx for idx, uid in db.execute("SELECT idx, uid FROM claims")}
    finally:
        db.close()


def _check_board(
    sim_dir: Path, name: str, res: ProvisionResult, batch: Path, pki: Pki, url: str, tls: TlsConfig, tmp: Path
) -> int:
    """The board holds its claimed image (plus its own certificate), boots firmware signed with that
    image's key, and agreed its key with the service. Returns the claimed index."""
    assert res.ok, res.error
    assert res.locked and res.key_confirmed
    assert res.uid == board_uid(name).hex().upper()
    index = _claims(batch)[res.uid]
    info = read_batch_info(batch)
    line = read_line(info, index)
    state = BoardFile.load(sim_dir, name)
    image = otp.parse(state.otp, check_digest=True)  # the batch digest still holds on the board
    assert image.secure_boot_pub == line.sb_pub[1:]
    assert image.uid == (line.uid if line.uid is not None else BLANK_UID)
    batch_image = read_image(info, index)
    for n in range(256):  # every entry except the board certificate is the batch image's
        if n not in BOARD_CERT_ENTRIES:
            assert state.otp[8 * n : 8 * n + 8] == batch_image[8 * n : 8 * n + 8], n
    written = [n for n in range(256) if state.otp[8 * n : 8 * n + 8] != b"\xff" * 8]
    assert set(written) <= set(state.locked_entries())
    uid_entries = set(otp.FIELDS["uid"].entries)
    assert uid_entries <= set(state.locked_entries())  # count mode: left blank, and locked blank
    # the board certificate read back from OTP names this board (openssl verify with the ICA from OTP)
    assert image.board_cert is not None
    leaf = x509.load_der_x509_certificate(image.board_cert)
    assert board_uid(name).hex().upper() in leaf.subject.rfc4514_string().upper()
    assert_openssl_verifies(pki.root_pem, image.board_cert, image.ica_cert, tmp)
    # the firmware in flash verifies with the batch manifest's key (imgtool)
    signed = Path(str(res.firmware_signed)).read_bytes()
    assert state.flash(len(signed)) == signed
    assert_imgtool_verifies(line.sb_pub, signed, tmp)
    # ECDH key confirmation reached the service; the board is locked; no OTP word burned twice
    assert service_state(url, tls, res.uid) == "key_agreed"
    assert (state.config[0x34] & 0xFF) != 0x5A
    assert ProgramLog(Path(str(res.journal)) / "otp_program_log.jsonl").max_count() == 1
    return index


def test_count_mode_batch_boards_end_to_end_with_resume(
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    monkeypatch: pytest.MonkeyPatch,
    otp_programs: dict[int, int],
) -> None:
    batch = build_test_batch(pki_files, tmp_path / "batch", count=4)
    journal = tmp_path / "j"

    # first run dies right after the service imported the key (its answer is lost)
    real = client_mod.ServiceClient.import_secure_boot_key

    def imported_then_killed(self: client_mod.ServiceClient, *a: Any, **kw: Any) -> Any:
        real(self, *a, **kw)
        raise Killed("sb_key")

    with monkeypatch.context() as mp:
        mp.setattr(client_mod.ServiceClient, "import_secure_boot_key", imported_then_killed)
        with pytest.raises(Killed):
            _run(service, tls, journal, "sim:bb1", batch)
    assert list(_claims(batch).values()) == [0]

    res = _run(service, tls, journal, "sim:bb1", batch)  # resume: same image, no second claim
    first = _check_board(sim_dir, "bb1", res, batch, pki_files, service.url, tls, tmp_path)
    assert first == 0 and len(_claims(batch)) == 1
    again = _run(service, tls, journal, "sim:bb1", batch)
    assert again.ok and [s.status for s in again.steps] == ["skipped"] * len(STEP_IDS)
    assert len(_claims(batch)) == 1
    assert max(otp_programs.values()) == 1  # counted at the simulated FMC, over both runs
    otp_programs.clear()

    res2 = _run(service, tls, journal, "sim:bb2", batch)  # a second board takes the next image
    second = _check_board(sim_dir, "bb2", res2, batch, pki_files, service.url, tls, tmp_path)
    assert second == 1
    info = read_batch_info(batch)
    assert read_line(info, first).sb_pub != read_line(info, second).sb_pub
    assert max(otp_programs.values()) == 1

    insp = flow.inspect_board("sim:bb1", ca=pki_files.chain_pem, journal_dir=journal)
    assert insp.ok, insp.to_json()


def test_uid_list_batch_writes_the_boards_uid_and_refuses_strangers(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    uids = tmp_path / "uids.txt"
    uids.write_text(f"{board_uid('bu0').hex()}\n{board_uid('bu1').hex()}\n")
    batch = build_test_batch(pki_files, tmp_path / "batch", uids=str(uids))
    res = _run(service, tls, tmp_path / "j", "sim:bu1", batch)
    assert _check_board(sim_dir, "bu1", res, batch, pki_files, service.url, tls, tmp_path) == 1
    state = BoardFile.load(sim_dir, "bu1")
    assert otp.parse(state.otp, check_digest=True).uid == board_uid("bu1")

    stranger = _run(service, tls, tmp_path / "j", "sim:bx9", batch)  # not in the UID list
    assert (
        not stranger.ok and stranger.exit_code == 2 and "not in this batch's UID list" in str(stranger.error)
    )
    assert BoardFile.load(sim_dir, "bx9").otp == b"\xff" * 2048  # nothing was burned
    assert _claims(batch) == {board_uid("bu1").hex().upper(): 1}


def test_service_answering_another_key_stops_before_the_key_is_burned(
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = build_test_batch(pki_files, tmp_path / "batch", count=2)
    forged = ec.generate_private_key(ec.SECP256R1()).public_key()
    forged_xy = forged.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]
    monkeypatch.setattr(
        client_mod.ServiceClient,
        "import_secure_boot_key",
        lambda self, uid, body: client_mod.SecureBootAnswer(forged_xy, "", True),
    )
    res = _run(service, tls, tmp_path / "j", "sim:bf1", batch)
    assert not res.ok and res.exit_code == 3 and "another secure-boot key" in str(res.error)
    sb = otp.FIELDS["secure_boot_pub"]
    assert BoardFile.load(sim_dir, "bf1").otp[sb.offset : sb.offset + sb.size] == b"\xff" * sb.size
