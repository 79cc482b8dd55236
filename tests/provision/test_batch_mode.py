"""``--mode batch`` end to end: simulated boards provisioned from a bulk OTP batch built by
``pki.batch`` against the service's own SoftHSM2 token, through the real service (HTTPS, mutual
TLS), which imports each claimed image's key into its HSM and signs the firmware with it.

Oracles: the batch manifest (public keys) and claims database, the batch images themselves, openssl
verify, imgtool verify, the service's status and the board's state file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nucore import otp
from nusec.otp_batch.claim import read_claims
from nusec.provision import client as client_mod
from nusec.provision import flow, link
from nusec.provision.client import TlsConfig
from nusec.provision.otp_writer import ProgramLog
from nusec.provision.report import BatchClaim, Event, ProvisionResult
from nusec.provision.steps import STEP_IDS
from nusim.board import board_uid
from pki.batch import ensure_batch_keys, read_batch_info, read_image, read_line
from pki.service.server import ServiceHandle
from tests.provision import test_flow
from tests.provision.conftest import FIRMWARE, BoardFile
from tests.provision.helpers import (
    assert_imgtool_verifies,
    assert_openssl_verifies,
    count_step_transfers,
    service_board,
    service_state,
    sim_program_counts,
)
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


def _run(
    service: ServiceHandle,
    tls: TlsConfig,
    journal: Path,
    probe: str,
    batch: Path,
    on_event: Callable[[Event], None] | None = None,
    *,
    dry_run: bool = False,
) -> ProvisionResult:
    return flow.provision_board(
        probe,
        service.url,
        FIRMWARE,
        tls,
        journal,
        mode="batch",
        on_event=on_event,
        batch_dir=batch,
        dry_run=dry_run,
    )


def _claims(batch: Path) -> dict[str, int]:
    """The batch's claims (through ``nusec.otp_batch``'s read-only API): board UID -> image index."""
    return {uid.hex().upper(): idx for idx, uid in read_claims(batch).items()}


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
    dry = _run(service, tls, tmp_path / "j", "sim:bx9", batch, dry_run=True)  # a dry run says so too
    assert dry.exit_code == 2 and "not in this batch's UID list" in str(dry.error)
    dry = _run(service, tls, tmp_path / "j", "sim:bu0", batch, dry_run=True)  # its UID's image, not the next
    assert (
        dry.ok
        and dry.batch_claim is not None
        and (dry.batch_claim.index, dry.batch_claim.claimed) == (0, False)
    )
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


# -- kill at every step k, then resume (the online test's machinery, in batch mode) ---------------

KILL_BATCH_COUNT = len(STEP_IDS) + 5  # one image per kill test and lost-journal test, plus the reference run


@pytest.fixture(scope="module")
def kill_batch(pki_files: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One count-mode batch shared by the kill tests (each board claims its own image)."""
    return build_test_batch(pki_files, tmp_path_factory.mktemp("kill") / "batch", count=KILL_BATCH_COUNT)


@pytest.fixture(scope="module")
def batch_transfers(
    service: ServiceHandle, pki_files: Pki, kill_batch: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, int]:
    """Transfers per SWD step of one undisturbed batch run, so the link drops land mid-step."""
    tmp = tmp_path_factory.mktemp("ref")
    tls = TlsConfig(pki_files.operator_cert, pki_files.operator_key, pki_files.chain_pem)
    with pytest.MonkeyPatch.context() as mp:
        (tmp / "sim").mkdir()
        mp.setenv("NUSEC_SIM_DIR", str(tmp / "sim"))
        mp.setenv("NUSEC_SIM_FSYNC", "0")
        mp.delenv("NUSEC_SIM_FAULTS", raising=False)
        on_event, counts = count_step_transfers(mp)
        res = _run(service, tls, tmp / "j", "sim:bref", kill_batch, on_event)
    assert res.ok, res.error
    assert all(counts[s] > 0 for s in test_flow.LINK_DROP_FRACTION)
    return counts


def _arm_batch_kill(
    step: str, mp: pytest.MonkeyPatch, links: list[link.SwdLink], transfers: dict[str, int]
) -> Callable[[Event], None]:
    """``test_flow._arm_kill`` with this batch's transfer counts; in batch mode the ``sb_key`` step's
    service call is the key import, so that is the answer lost there."""
    on_event = test_flow._arm_kill(step, mp, links, transfers)
    if step == "sb_key":
        real = client_mod.ServiceClient.import_secure_boot_key

        def imported_then_killed(self: client_mod.ServiceClient, *a: Any, **kw: Any) -> Any:
            real(self, *a, **kw)
            raise test_flow.Killed(step)

        mp.setattr(client_mod.ServiceClient, "import_secure_boot_key", imported_then_killed)
    return on_event


@pytest.mark.parametrize("step", STEP_IDS)
def test_batch_kill_at_step_then_resume(
    step: str,
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    kill_batch: Path,
    batch_transfers: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    otp_programs: dict[int, int],
) -> None:
    board = f"bk{STEP_IDS.index(step)}"
    uid = board_uid(board).hex().upper()
    journal = tmp_path / "j"
    links: list[link.SwdLink] = []
    with monkeypatch.context() as mp:
        on_event = _arm_batch_kill(step, mp, links, batch_transfers)
        try:
            first = _run(service, tls, journal, f"sim:{board}", kill_batch, on_event)
        except test_flow.Killed:
            first = None
        finally:
            for lk in links:
                lk.close()
    if first is not None:  # a link drop ends the run with an error instead of killing it
        assert not first.ok and first.exit_code == 4, (first.exit_code, first.error)
        assert first.steps[-1].id == step and first.steps[-1].status == "failed"
    claimed_first = [i for i, u in read_claims(kill_batch).items() if u.hex().upper() == uid]
    assert len(claimed_first) == (0 if STEP_IDS.index(step) < STEP_IDS.index("otp_ca") else 1)

    res = _run(service, tls, journal, f"sim:{board}", kill_batch)
    # the board is finished: its claimed image (digest intact) plus its own certificate in OTP, the
    # manifest's key for that index, firmware imgtool-verified with it, key agreed, locked
    index = _check_board(sim_dir, board, res, kill_batch, pki_files, service.url, tls, tmp_path)
    statuses = {s.id: s.status for s in res.steps}
    # the interrupted step ran again, to completion; a lock that landed is proven by the board itself
    assert statuses[step] == ("recovered" if step == "lock" else "done"), statuses
    assert all(statuses[s] == "skipped" for s in STEP_IDS[: STEP_IDS.index(step)])
    # exactly one image for this board over both runs, and the resume took the first run's
    assert [i for i, u in read_claims(kill_batch).items() if u.hex().upper() == uid] == [index]
    assert claimed_first in ([], [index])
    info = read_batch_info(kill_batch)
    assert res.batch_claim == BatchClaim(info.batch_id.hex(), index, claimed=True)
    # the service's record names the same image, once
    record = service_board(service.url, tls, uid)
    imports = [r["detail"] for r in record["steps"] if r["step"] == "secure_boot_key"]
    assert imports == [f"batch:{info.batch_id.hex()}:{index}"], imports
    # no OTP word or lock word programmed twice: at the FMC (fixture) and in the board's own counters
    assert otp_programs and max(otp_programs.values()) == 1
    words, locks = sim_program_counts(sim_dir, board)
    assert max(words) == 1 and max(locks) == 1


# -- --dry-run: which image a run would claim, claiming nothing --------------------------------------


def test_dry_run_reports_the_image_it_would_claim_and_claims_nothing(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    batch = build_test_batch(pki_files, tmp_path / "batch", count=3)
    bid = read_batch_info(batch).batch_id.hex()
    db = batch / "claims.sqlite"
    journal = tmp_path / "j"

    dry = _run(service, tls, journal, "sim:bd1", batch, dry_run=True)
    assert dry.ok and dry.dry_run, dry.error
    assert dry.batch_claim == BatchClaim(bid, 0, claimed=False)
    assert dry.to_json()["batch_claim"] == {"batch_id": bid, "index": 0, "claimed": False}
    plan = {s.id: s for s in dry.steps}
    assert all(s.status == "planned" for s in dry.steps)
    assert plan["otp_ca"].detail.startswith(f"claim image 0 of batch {bid}, then program ")
    assert not db.exists()  # not even the claims database was created
    assert BoardFile.load(sim_dir, "bd1").otp == b"\xff" * 2048

    res0 = _run(service, tls, journal, "sim:bd0", batch)  # another board takes image 0
    assert _check_board(sim_dir, "bd0", res0, batch, pki_files, service.url, tls, tmp_path) == 0
    before, mtime = db.read_bytes(), db.stat().st_mtime_ns
    dry = _run(service, tls, journal, "sim:bd1", batch, dry_run=True)
    assert dry.ok and dry.batch_claim == BatchClaim(bid, 1, claimed=False), dry.error
    assert db.read_bytes() == before and db.stat().st_mtime_ns == mtime
    assert read_claims(batch) == {0: board_uid("bd0")}

    res1 = _run(service, tls, journal, "sim:bd1", batch)  # the real run claims the forecast image
    assert _check_board(sim_dir, "bd1", res1, batch, pki_files, service.url, tls, tmp_path) == 1
    assert res1.batch_claim == BatchClaim(bid, 1, claimed=True)
    before = db.read_bytes()
    done = _run(service, tls, journal, "sim:bd1", batch, dry_run=True)  # a claimed board names its claim
    assert done.ok and done.batch_claim == BatchClaim(bid, 1, claimed=True)
    assert [s.status for s in done.steps] == ["skipped"] * len(STEP_IDS)
    assert db.read_bytes() == before


def test_cli_dry_run_names_the_image_in_json_and_summary(
    service: ServiceHandle, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    from tests.provision.test_cli import _args, _nusec

    batch = build_test_batch(pki_files, tmp_path / "batch", count=2)
    bid = read_batch_info(batch).batch_id.hex()
    args = [*_args(service, pki_files, tmp_path / "j", "sim:bc1"), "--mode", "batch", "--batch", str(batch)]
    out = _nusec([*args, "--dry-run", "--json"], sim_dir)
    assert out.returncode == 0, out.stderr
    board = json.loads(out.stdout.strip().splitlines()[-1])["boards"][0]
    assert board["batch_claim"] == {"batch_id": bid, "index": 0, "claimed": False}
    human = _nusec([*args, "--dry-run"], sim_dir)
    assert human.returncode == 0, human.stderr
    progress, summary = " ".join(human.stderr.split()), " ".join(human.stdout.split())  # rich wraps at 80
    assert f"batch image 0 of batch {bid}: would be claimed (not claimed)" in progress
    assert f"sim:bc1: batch image 0 of batch {bid} (would be claimed; dry run, nothing claimed)" in summary
    assert read_claims(batch) == {} and not (batch / "claims.sqlite").exists()


@pytest.mark.parametrize("step", ["otp_ca", "sb_key", "otp_sb_key", "flash_fw"])
def test_batch_lost_journal_resumes_on_the_same_image(
    step: str,
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    kill_batch: Path,
    batch_transfers: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    otp_programs: dict[int, int],
) -> None:
    import shutil

    board = f"bl{STEP_IDS.index(step)}"
    links: list[link.SwdLink] = []
    with monkeypatch.context() as mp:
        on_event = _arm_batch_kill(step, mp, links, batch_transfers)
        try:
            _run(service, tls, tmp_path / "j", f"sim:{board}", kill_batch, on_event)
        except test_flow.Killed:
            pass
        for lk in links:
            lk.close()
    shutil.rmtree(tmp_path / "j")
    res = _run(service, tls, tmp_path / "j", f"sim:{board}", kill_batch)
    index = _check_board(sim_dir, board, res, kill_batch, pki_files, service.url, tls, tmp_path)
    uid = board_uid(board).hex().upper()
    assert [i for i, u in read_claims(kill_batch).items() if u.hex().upper() == uid] == [index]
    assert max(otp_programs.values()) == 1
