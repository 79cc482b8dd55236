"""What an impatient operator, a power cut, a lost journal or a debugger-wielding attacker does to a
run, each in its exact window, and what the board and the service must hold afterwards.

Every test drives the real flow against the real service (HTTPS, mTLS, SoftHSM2) and a simulated
board; the oracles are the board's state file, the service's own records, openssl and imgtool.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nucore import otp
from nusec.provision import flow, link
from nusec.provision.client import TlsConfig
from nusec.provision.otp_writer import ProgramLog
from nusec.provision.report import Event, ProvisionResult
from nusec.provision.steps import STEP_IDS
from nusim.board import board_uid
from pki.service.server import ServiceHandle
from tests.provision.conftest import FIRMWARE, BoardFile
from tests.provision.helpers import (
    assert_provisioned,
    failures_reported,
    service_certificates,
    sim_program_counts,
)
from tests.service.conftest import Pki, aborted_requests, wait_for_abort

CERT_ENTRIES = otp.FIELDS["board_cert"].entries


class Killed(BaseException):
    """Stands for the process dying: not an error the runner handles."""


def run(
    service: ServiceHandle,
    tls: TlsConfig,
    journal: Path,
    probe: str,
    on_event: Callable[[Event], None] | None = None,
    firmware: Path = FIRMWARE,
) -> ProvisionResult:
    return flow.provision_board(probe, service.url, firmware, tls, journal, on_event=on_event)


def kill_after(step: str) -> Callable[[Event], None]:
    """An event sink that kills the run the moment ``step`` is journaled done."""

    def on_event(ev: Event) -> None:
        if ev.kind == "step_done" and ev.step == step:
            raise Killed(step)

    return on_event


def run_killed(
    service: ServiceHandle, tls: TlsConfig, journal: Path, probe: str, on_event: Callable[[Event], None]
) -> None:
    """Run until ``on_event`` kills it; the links it opened are closed (the probe unplugged)."""
    opened: list[link.SwdLink] = []
    real_open = link.SwdLink.open

    def tracking(self: link.SwdLink) -> link.SwdLink:
        opened.append(real_open(self))
        return self

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(link.SwdLink, "open", tracking)
        try:
            res = run(service, tls, journal, probe, on_event)
        except Killed:
            res = None
        finally:
            for lk in opened:
                lk.close()
    assert res is None, (res.exit_code, res.error)  # the kill must land: a finished run proves nothing


def uid_of(board: str) -> str:
    return board_uid(board).hex().upper()


def no_second_burn(sim_dir: Path, board: str) -> None:
    words, locks = sim_program_counts(sim_dir, board)
    assert max(words) <= 1 and max(locks) <= 1


# -- defect 2: a truncated firmware must not brick the board -------------------------------------


def test_truncated_firmware_is_not_locked_and_the_right_file_finishes(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    short = tmp_path / "short.bin"
    short.write_bytes(FIRMWARE.read_bytes()[:2048])  # passes every up-front check: only booting tells
    res = run(service, tls, tmp_path / "j", "sim:tr1", firmware=short)
    assert res.exit_code == 3 and "did not answer" in str(res.error) and "NOT locked" in str(res.error)
    assert res.steps[-1].id == "lock" and not res.locked
    state = BoardFile.load(sim_dir, "tr1")
    assert (
        state.config[0x34] == 0x5A
    )  # the all-region lock word is still unlocked: the board can be reflashed
    good = run(service, tls, tmp_path / "j", "sim:tr1")
    assert_provisioned(sim_dir, "tr1", good, pki_files.root_pem, service.url, tls, tmp_path)
    statuses = {s.id: s.status for s in good.steps}
    assert statuses["sign_fw"] == "done" and statuses["flash_fw"] == "done"  # signed and flashed again
    no_second_burn(sim_dir, "tr1")


# -- defect 3: a power cut between flash_fw and lock ---------------------------------------------


def test_power_cut_between_flash_and_lock_never_locks_a_damaged_image(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    boards: list[Any] = []
    real_open = link.SwdLink.open

    def tracking(self: link.SwdLink) -> link.SwdLink:
        real_open(self)
        boards.append(self.session.probe.board)  # type: ignore[union-attr]
        return self

    def power_cut_after_flash(ev: Event) -> None:
        if ev.kind == "step_done" and ev.step == "flash_fw":
            board = boards[-1]
            board.power_lost = True  # the flash batch not yet saved is lost, as on a real power cut
            board.link_down = True
            raise Killed("flash_fw")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(link.SwdLink, "open", tracking)
        with pytest.raises(Killed):
            run(service, tls, tmp_path / "j", "sim:pc1", power_cut_after_flash)
        for b in boards:
            b.close()
    signed = (tmp_path / "j" / uid_of("pc1") / "firmware_signed.bin").read_bytes()
    assert BoardFile.load(sim_dir, "pc1").flash(len(signed)) != signed  # the tail really is gone
    res = run(service, tls, tmp_path / "j", "sim:pc1")
    assert_provisioned(sim_dir, "pc1", res, pki_files.root_pem, service.url, tls, tmp_path)
    lock = json.loads(next(s.detail for s in res.steps if s.id == "lock"))
    assert lock["reflashed"] is True
    no_second_burn(sim_dir, "pc1")


# -- defects 4, 5, 6b: a lost journal, after every step -----------------------------------------------


@pytest.mark.parametrize("step", STEP_IDS)
def test_lost_journal_after_step(
    step: str, service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    board = f"lj{STEP_IDS.index(step)}"
    journal = tmp_path / "j"
    run_killed(service, tls, journal, f"sim:{board}", kill_after(step))
    serials_before = service_certificates(pki_files.dir, uid_of(board))
    failures_before = failures_reported(service.url, tls, uid_of(board))
    signed_before = journal / uid_of(board) / "firmware_signed.bin"
    if signed_before.is_file():
        shutil.copy(signed_before, tmp_path / "signed-before.bin")
    shutil.rmtree(journal)
    res = run(service, tls, journal, f"sim:{board}")
    if res.firmware_signed is None and res.locked:
        # a locked board's flash cannot be read and its image is not signed again: the flash is
        # checked against the image of the first run (the reset step proved that it boots)
        res.firmware_signed = tmp_path / "signed-before.bin"
    if step in ("keygen", "csr"):
        # a key in the identity slot that nothing on record explains: refused as tampered, and
        # nothing certified (this is what a lost journal costs between keygen and certify)
        assert res.exit_code == 5 and "board tampered" in str(res.error), res.error
        assert service_certificates(pki_files.dir, uid_of(board)) == 0
        assert (
            BoardFile.load(sim_dir, board).otp[8 * CERT_ENTRIES.start : 8 * CERT_ENTRIES.stop]
            == b"\xff" * 768
        )
        return
    assert_provisioned(sim_dir, board, res, pki_files.root_pem, service.url, tls, tmp_path)
    assert service_certificates(pki_files.dir, uid_of(board)) == 1  # never a second certificate
    assert serials_before <= 1
    no_second_burn(sim_dir, board)
    if step == "ecdh":  # a finished board is recognised as finished, and no failure is reported
        assert all(s.status == "recovered" for s in res.steps if s.id not in ("reset", "ecdh"))
        assert failures_reported(service.url, tls, uid_of(board)) == failures_before


def test_kill_during_otp_cert_then_lost_journal_is_not_stranded(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    in_step: list[str] = []
    real_done = ProgramLog.done
    programmed: list[int] = []

    def done_then_maybe_killed(self: ProgramLog, addr: int) -> None:
        real_done(self, addr)
        if in_step == ["otp_cert"]:
            programmed.append(addr)
            if len(programmed) == 40:  # part of the certificate is in OTP, the rest is not
                raise Killed("otp_cert")

    def on_event(ev: Event) -> None:
        if ev.kind == "step_start":
            in_step[:] = [str(ev.step)]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ProgramLog, "done", done_then_maybe_killed)
        run_killed(service, tls, tmp_path / "j", "sim:oc1", on_event)
    area = BoardFile.load(sim_dir, "oc1").otp[8 * CERT_ENTRIES.start : 8 * CERT_ENTRIES.stop]
    assert area != b"\xff" * 768 and area.count(b"\xff" * 8) > 10  # partly written
    shutil.rmtree(tmp_path / "j")
    res = run(service, tls, tmp_path / "j", "sim:oc1")
    assert_provisioned(sim_dir, "oc1", res, pki_files.root_pem, service.url, tls, tmp_path)
    assert service_certificates(pki_files.dir, uid_of("oc1")) == 1
    no_second_burn(sim_dir, "oc1")


# -- defect 6a: another board under the same probe id --------------------------------------------------


def test_swapped_board_is_read_not_assumed(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    station = tmp_path / "station"
    assert run(service, tls, station, "sim:swa").ok  # board A, finished at this station
    assert run(service, tls, tmp_path / "elsewhere", "sim:swb").ok  # board B, finished at another one
    # this station last saw board A behind probe sim:swb (boards swapped on the bench)
    (station / "probes" / "sim_swb.uid").write_text(uid_of("swa"))
    res = run(service, tls, station, "sim:swb")
    assert res.uid == uid_of("swb"), "the run must read the board, not trust the probe's history"
    assert res.ok and res.journal == station / uid_of("swb")
    assert all(s.status in ("recovered", "done") for s in res.steps)


# -- defect 7: a key planted in the identity slot ----------------------------------------------------------


def plant_identity_key(board: str) -> None:
    """What an attacker with a debugger does before the lock: KeyStore WRITE of a chosen private
    key into the identity key's OTP slot, through the KS registers over SWD, as the part needs it
    (module clocks on, INIT waited for, BUSY polled)."""
    from nuboard.keyslots import IDENTITY_SLOT
    from nusim import keystore, memmap
    from tests.sim.sim_helpers import ks_open, ks_wait

    lk = link.SwdLink(f"sim:{board}").open()
    try:
        mem = lk.memory
        ks_open(mem)
        meta = keystore.make_meta(
            dst=keystore.MEM_OTP, owner=keystore.OWNER_ECC, size=6, number=IDENTITY_SLOT
        )
        mem.write32(memmap.KS_BASE + keystore.METADATA, meta)
        for i in range(8):  # a private key the attacker knows
            mem.write32(memmap.KS_BASE + 0x20 + 4 * i, 0x1111_1111 * (i + 1))
        mem.write32(memmap.KS_BASE + keystore.CTL, (1 << 1) | keystore.CTL_START)  # OPMODE WRITE
        ks_wait(mem)
        assert mem.read32(memmap.KS_BASE + 0x40) >> IDENTITY_SLOT & 1, "the plant did not take"
    finally:
        lk.close()


def test_planted_identity_key_is_refused_before_any_certificate_request(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path
) -> None:
    plant_identity_key("pl1")
    res = run(service, tls, tmp_path / "j", "sim:pl1")
    assert res.exit_code == 5 and "board tampered" in str(res.error), res.error
    assert res.steps[-1].id == "keygen"
    with pytest.raises(Exception, match="404"):  # the service never saw a CSR, issued nothing
        import httpx

        with httpx.Client(base_url=service.url, verify=tls.ssl_context()) as c:
            c.get(f"/v1/boards/{uid_of('pl1')}/certificate").raise_for_status()
    assert BoardFile.load(sim_dir, "pl1").otp[8 * CERT_ENTRIES.start : 8 * CERT_ENTRIES.stop] == b"\xff" * 768


# -- defect 8: damaged files, full disks --------------------------------------------------------------------


def _flip_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _non_utf8_line(p: Path) -> None:
    lines = p.read_bytes().splitlines(keepends=True)
    p.write_bytes(b"".join(lines[:2]) + b"\xff\xfe\x00 not json \x80\n" + b"".join(lines[2:]))


DAMAGE: dict[str, tuple[str, str, Callable[[Path], object]]] = {
    "journal-non-utf8": ("sb_key", "journal.jsonl", _non_utf8_line),
    "garbage-csr": (
        "csr",
        "board.csr.pem",
        lambda p: p.write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n"),
    ),
    "truncated-cert": ("certify", "board_cert.pem", lambda p: p.write_bytes(p.read_bytes()[:300])),
    "flipped-firmware": ("sign_fw", "firmware_signed.bin", _flip_byte),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_artifact_is_named_and_repaired(
    case: str, service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    step, name, damage = DAMAGE[case]
    board = f"dm{sorted(DAMAGE).index(case)}"
    journal = tmp_path / "j"
    run_killed(service, tls, journal, f"sim:{board}", kill_after(step))
    path = journal / uid_of(board) / name
    damage(path)
    notes: list[str] = []
    res = run(
        service,
        tls,
        journal,
        f"sim:{board}",
        lambda ev: notes.append(ev.detail) if ev.kind == "note" else None,
    )
    assert_provisioned(sim_dir, board, res, pki_files.root_pem, service.url, tls, tmp_path)
    assert service_certificates(pki_files.dir, uid_of(board)) == 1
    assert any(str(path) in n for n in notes), notes  # the damaged file is named, and was repaired
    no_second_burn(sim_dir, board)


def test_torn_program_log_tail_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "otp_program_log.jsonl"
    path.write_text('{"addr":1,"event":"intent"}\n{"addr":1,"event":"done"}\n{"addr":2,"ev')  # torn by a cut
    log = ProgramLog(path)
    log.intent(3)
    lines = path.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [
        {"addr": 1, "event": "intent"},
        {"addr": 1, "event": "done"},
        {"addr": 3, "event": "intent"},
    ]
    assert ProgramLog(path).counts == {1: 1}


def test_disk_full_is_one_line_naming_the_path_then_resume_finishes(
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENOSPC injected at the system call that appends to the OTP program log (the file that grows
    during the irreversible steps), in the middle of ``otp_ca``."""

    real_write = os.write
    calls = {"n": 0}

    def full_disk_write(fd: int, data: bytes) -> int:
        if b'"addr"' in data:
            calls["n"] += 1
            if calls["n"] == 57:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    with monkeypatch.context() as mp:
        mp.setattr(os, "write", full_disk_write)  # the os module appendlog writes through
        res = run(service, tls, tmp_path / "j", "sim:df1")
    log_path = tmp_path / "j" / uid_of("df1") / "otp_program_log.jsonl"
    assert res.exit_code == 1 and res.steps[-1].id == "otp_ca"
    assert str(log_path) in str(res.error) and "No space left on device" in str(res.error)
    assert "\n" not in str(res.error) and "Traceback" not in str(res.error)
    again = run(service, tls, tmp_path / "j", "sim:df1")
    assert_provisioned(sim_dir, "df1", again, pki_files.root_pem, service.url, tls, tmp_path)
    no_second_burn(sim_dir, "df1")


def _can_mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    ok = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )
    if ok:
        subprocess.run(["umount", str(where)], check=True)
    return ok


def test_small_tmpfs_journal_fills_up_then_resume_finishes(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    mnt = tmp_path / "small"
    if not _can_mount_tmpfs(mnt):
        pytest.skip(
            "mounting a tmpfs needs root (CAP_SYS_ADMIN); the injected-ENOSPC test covers the same path"
        )
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mnt)], check=True)
    try:
        res = run(service, tls, mnt / "j", "sim:tf1")
        assert res.exit_code == 1 and "No space left on device" in str(res.error), res.error
        assert str(mnt / "j") in str(res.error) and "\n" not in str(res.error)
        subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], check=True)  # the operator frees space
        again = run(service, tls, mnt / "j", "sim:tf1")
        assert_provisioned(sim_dir, "tf1", again, pki_files.root_pem, service.url, tls, tmp_path)
        no_second_burn(sim_dir, "tf1")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# -- a run killed in the middle of an upload ---------------------------------------------------------


def test_run_killed_mid_upload_does_not_spoil_its_idempotency_key(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    """The process dies after sending part of a POST body: the service keeps the Idempotency-Key
    claimed for the cut-off body. The resume's identical request must still get through."""
    import socket
    from urllib.parse import urlsplit

    from nusec.provision.client import ServiceClient

    uid = uid_of("mu1")
    body = {"uid": uid}
    key = ServiceClient.idempotency_key(board_uid("mu1"), "register", repr(sorted(body.items())).encode())
    url = urlsplit(service.url)
    head = (
        f"POST /v1/boards HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 64\r\nIdempotency-Key: {key}\r\n\r\n"
    )
    before = aborted_requests(service)
    with socket.create_connection((url.hostname, url.port)) as raw:
        with tls.ssl_context().wrap_socket(raw, server_hostname=url.hostname) as s:
            s.sendall(head.encode() + b'{"uid": "')  # ... and the process is killed here
    wait_for_abort(service, before)  # the service has seen the cut-off body: now the resume
    res = run(service, tls, tmp_path / "j", "sim:mu1")
    assert_provisioned(sim_dir, "mu1", res, pki_files.root_pem, service.url, tls, tmp_path)
