"""End to end: a simulated board provisioned through the real service (HTTPS, mutual TLS,
SoftHSM2), then killed at every step and resumed, and fed forged service answers.

Oracles: openssl verify, imgtool verify, the service's own status, and the board's state file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from nucore import otp
from nusec.provision import client as client_mod
from nusec.provision import flow, link
from nusec.provision.client import TlsConfig
from nusec.provision.report import Event, ProvisionResult
from nusec.provision.steps import STEP_IDS
from pki.service.server import ServiceHandle
from tests.provision.conftest import FIRMWARE, BoardFile
from tests.provision.helpers import assert_provisioned, count_step_transfers, service_board
from tests.service.conftest import Pki


class Killed(BaseException):
    """Stands for the process dying: not an error the runner handles."""


def run(
    service: ServiceHandle,
    tls: TlsConfig,
    journal: Path,
    probe: str,
    on_event: Callable[[Event], None] | None = None,
) -> ProvisionResult:
    return flow.provision_board(probe, service.url, FIRMWARE, tls, journal, on_event=on_event)


def test_end_to_end(
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    otp_programs: dict[int, int],
) -> None:
    res = run(service, tls, tmp_path / "j", "sim:e2e")
    assert [s.status for s in res.steps] == ["done"] * len(STEP_IDS), (res.error, res.steps)
    assert_provisioned(sim_dir, "e2e", res, pki_files.root_pem, service.url, tls, tmp_path)
    again = run(service, tls, tmp_path / "j", "sim:e2e")  # finished board: nothing left to do
    assert again.ok and [s.status for s in again.steps] == ["skipped"] * len(STEP_IDS)
    insp = flow.inspect_board("sim:e2e", ca=pki_files.chain_pem, journal_dir=tmp_path / "j")
    assert insp.ok, insp.to_json()
    assert insp.locked and not insp.debugger_access and insp.otp_dump
    assert max(otp_programs.values()) == 1


def test_two_boards_in_parallel(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    opts = flow.RunOptions(service.url, FIRMWARE, tls, tmp_path / "j")
    results = flow.provision_boards(["sim:p1", "sim:p2"], opts)
    assert len({r.uid for r in results}) == 2
    for name, res in zip(("p1", "p2"), results, strict=True):
        assert_provisioned(sim_dir, name, res, pki_files.root_pem, service.url, tls, tmp_path)


# -- kill at every step k, then resume ---------------------------------------------------------

NETWORK_CALL = {
    "register": "register",
    "certify": "certify",
    "sb_key": "secure_boot_key",
    "sign_fw": "sign_firmware",
    "nubl2": "nubl2",
}
#: For SWD steps: drop the probe link after this fraction of the step's transfers (mid-step).
LINK_DROP_FRACTION = {
    "otp_ca": 0.9,
    "keygen": 0.5,
    "csr": 0.5,
    "otp_cert": 0.8,
    "otp_sb_key": 0.9,
    "flash_fw": 0.5,
    "rom_key": 0.5,
}


def _arm_kill(
    step: str, monkeypatch: pytest.MonkeyPatch, links: list[link.SwdLink], transfers: dict[str, int]
) -> Callable[[Event], None]:
    """Make the run die inside ``step``: after the service answered (answer lost), after the
    board acted (reset, ECDH), or by dropping the probe link in the middle of the step's writes
    (``transfers``: an undisturbed run's transfers per step, so the drop lands mid-step)."""
    in_step: list[str] = []
    if step in NETWORK_CALL:
        name = NETWORK_CALL[step]
        real = getattr(client_mod.ServiceClient, name)

        def answered_then_killed(self: Any, *a: Any, **kw: Any) -> Any:
            real(self, *a, **kw)
            raise Killed(step)

        monkeypatch.setattr(client_mod.ServiceClient, name, answered_then_killed)
    elif step == "ca_chain":  # the chain is fetched (and checked) in preflight; die after saving it
        from nusec.provision.journal import Journal

        real_save = Journal.save_artifact

        def saved_then_killed(self: Journal, name: str, data: bytes) -> Path:
            out = real_save(self, name, data)
            if name == "ica.pem":
                raise Killed(step)
            return out

        monkeypatch.setattr(Journal, "save_artifact", saved_then_killed)
    elif step == "lock":
        real_lock = flow.enable_secure_lock  # type: ignore[attr-defined]  # the name the flow calls

        def lock_then_killed(*a: Any, **kw: Any) -> None:
            real_lock(*a, **kw)
            raise Killed(step)

        monkeypatch.setattr(flow, "enable_secure_lock", lock_then_killed)
    elif step == "reset":
        real_reset = link.SwdLink.hardware_reset

        def reset_then_killed(self: link.SwdLink) -> None:
            real_reset(self)
            if in_step:  # the lock step resets too (to apply the lock); kill only in ``reset``
                raise Killed(step)

        monkeypatch.setattr(link.SwdLink, "hardware_reset", reset_then_killed)
    elif step == "ecdh":
        real_finish = link.FirmwareChannel.ecdh_finish

        def finish_then_killed(self: link.FirmwareChannel, *a: Any) -> bytes:
            real_finish(self, *a)
            raise Killed(step)  # the board holds the key, the service never hears kc_board

        monkeypatch.setattr(link.FirmwareChannel, "ecdh_finish", finish_then_killed)
    real_open = link.SwdLink.open

    def tracking_open(self: link.SwdLink) -> link.SwdLink:
        links.append(real_open(self))
        return self

    monkeypatch.setattr(link.SwdLink, "open", tracking_open)

    def on_event(ev: Event) -> None:
        if ev.kind == "step_start" and ev.step == step:
            in_step.append(step)
        if ev.kind == "step_start" and ev.step == step and step in LINK_DROP_FRACTION:
            board = links[-1].session.probe.board  # type: ignore[union-attr]
            budget = transfers[step]
            board.faults.drop_link_after = board.faults.transfers + max(
                1, int(budget * LINK_DROP_FRACTION[step])
            )

    return on_event


@pytest.fixture(scope="module")
def reference_transfers(
    service: ServiceHandle, pki_files: Pki, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, int]:
    """Transfers per SWD step of one undisturbed run, measured once per module (a fixture, not
    a module global filled by whichever test ran first)."""
    tmp = tmp_path_factory.mktemp("ref")
    tls = TlsConfig(pki_files.operator_cert, pki_files.operator_key, pki_files.chain_pem)
    with pytest.MonkeyPatch.context() as mp:
        (tmp / "sim").mkdir()
        mp.setenv("NUSEC_SIM_DIR", str(tmp / "sim"))
        mp.setenv("NUSEC_SIM_FSYNC", "0")
        mp.delenv("NUSEC_SIM_FAULTS", raising=False)
        on_event, counts = count_step_transfers(mp)
        res = run(service, tls, tmp / "j", "sim:ref", on_event)
    assert res.ok, res.error
    return counts


def test_reference_transfers(reference_transfers: dict[str, int]) -> None:
    """The clean run touched the board in every step a link drop is aimed at."""
    assert all(reference_transfers[s] > 0 for s in LINK_DROP_FRACTION)


@pytest.mark.parametrize("step", STEP_IDS)
def test_kill_at_step_then_resume(
    step: str,
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    monkeypatch: pytest.MonkeyPatch,
    otp_programs: dict[int, int],
    reference_transfers: dict[str, int],
) -> None:
    board = f"k{STEP_IDS.index(step)}"
    journal = tmp_path / "j"
    links: list[link.SwdLink] = []
    with monkeypatch.context() as mp:
        on_event = _arm_kill(step, mp, links, reference_transfers)
        try:
            first = run(service, tls, journal, f"sim:{board}", on_event)
        except Killed:
            first = None
        finally:
            for lk in links:
                lk.close()
    if first is not None:  # a link drop ends the run with an error instead of killing it
        assert not first.ok and first.exit_code == 4, (first.exit_code, first.error)
        assert first.steps[-1].id == step and first.steps[-1].status == "failed"
    res = run(service, tls, journal, f"sim:{board}")
    assert_provisioned(sim_dir, board, res, pki_files.root_pem, service.url, tls, tmp_path)
    statuses = {s.id: s.status for s in res.steps}
    # the interrupted step ran again, to completion; a lock that landed is proven by the board itself
    assert statuses[step] == ("recovered" if step == "lock" else "done"), statuses
    assert otp_programs and max(otp_programs.values()) == 1  # no OTP word or lock word burned twice
    assert all(statuses[s] == "skipped" for s in STEP_IDS[: STEP_IDS.index(step)])


# -- forged service answers ----------------------------------------------------------------------


def _blank_from(sim_dir: Path, board: str, entries: range) -> bool:
    if not (sim_dir / f"{board}.json").exists():
        return True  # refused before the board was even opened
    st = BoardFile.load(sim_dir, board)
    return all(st.otp[8 * n : 8 * n + 8] == b"\xff" * 8 for n in entries)


def test_forged_chain_stops_before_otp(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.provision.forge import forged_chain

    monkeypatch.setattr(client_mod.ServiceClient, "ca_chain", forged_chain)
    res = run(service, tls, tmp_path / "j", "sim:f1")
    assert res.exit_code == 3 and "forged chain" in (res.error or "")
    assert _blank_from(sim_dir, "f1", range(256))


def test_certificate_for_another_uid_stops_before_otp_cert(
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.provision.forge import certify_for_other_uid

    monkeypatch.setattr(client_mod.ServiceClient, "certify", certify_for_other_uid(pki_files))
    res = run(service, tls, tmp_path / "j", "sim:f2")
    assert res.exit_code == 3 and "not this board" in (res.error or ""), res.error
    assert res.steps[-1].id == "certify"
    assert _blank_from(sim_dir, "f2", range(17, 25)) and _blank_from(sim_dir, "f2", range(32, 128))


def test_secure_boot_key_mismatch_stops_before_burn(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.provision.forge import other_secure_boot_key

    monkeypatch.setattr(client_mod.ServiceClient, "secure_boot_key", other_secure_boot_key)
    res = run(service, tls, tmp_path / "j", "sim:f3")
    assert res.exit_code == 3 and res.steps[-1].id == "sign_fw", res.error
    assert _blank_from(sim_dir, "f3", range(17, 25)) and _blank_from(sim_dir, "f3", range(252, 256))
    assert BoardFile.load(sim_dir, "f3").flash_pages == {}


def test_bad_ecdh_signature_stops_the_exchange(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.provision.forge import tampered_ecdh

    monkeypatch.setattr(
        client_mod.ServiceClient, "ecdh_begin", tampered_ecdh(client_mod.ServiceClient.ecdh_begin)
    )
    res = run(service, tls, tmp_path / "j", "sim:f4")
    assert res.exit_code == 3 and res.steps[-1].id == "ecdh" and "does not verify" in (res.error or "")
    assert not res.key_confirmed


def test_inspect_before_the_lock_reads_and_checks_everything(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    def stop_before_lock(ev: Event) -> None:
        if ev.kind == "step_start" and ev.step == "lock":
            raise Killed("lock")

    with pytest.raises(Killed):
        run(service, tls, tmp_path / "j", "sim:i1", stop_before_lock)
    insp = flow.inspect_board("sim:i1", ca=pki_files.chain_pem)
    assert insp.ok, insp.to_json()
    assert insp.debugger_access and insp.locked is False
    names = {c.name for c in insp.checks}
    assert "board certificate chains (openssl verify)" in names
    assert "firmware in flash verifies with OTP secure-boot key" in names
    assert insp.otp_locked_entries == 256 and 0 < insp.otp_written_entries < 256  # every entry is locked
    from tests.provision.forge import look_alike_root_pem

    (tmp_path / "other-root.pem").write_text(look_alike_root_pem())
    wrong = flow.inspect_board("sim:i1", ca=tmp_path / "other-root.pem")
    assert not wrong.ok
    assert not next(c for c in wrong.checks if c.name == "root key = trusted RootCA").ok


def test_lost_journal_costs_time_not_a_double_burn(
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    pki_files: Pki,
    monkeypatch: pytest.MonkeyPatch,
    otp_programs: dict[int, int],
    reference_transfers: dict[str, int],
) -> None:
    import shutil

    links: list[link.SwdLink] = []
    with monkeypatch.context() as mp:
        # RootCA/ICA and board certificate are in OTP
        on_event = _arm_kill("sb_key", mp, links, reference_transfers)
        with pytest.raises(Killed):
            run(service, tls, tmp_path / "j", "sim:lj1", on_event)
        for lk in links:
            lk.close()
    shutil.rmtree(tmp_path / "j")
    res = run(service, tls, tmp_path / "j", "sim:lj1")
    assert_provisioned(sim_dir, "lj1", res, pki_files.root_pem, service.url, tls, tmp_path)
    assert max(otp_programs.values()) == 1
    # the certificate came back from the service (GET), no second one was issued
    assert json.loads(next(s.detail for s in res.steps if s.id == "certify"))["source"] == "service"
    otp_cert = x509.load_der_x509_certificate(otp.parse(BoardFile.load(sim_dir, "lj1").otp).board_cert or b"")
    assert service_board(service.url, tls, str(res.uid))["certificate_serial"] == format(
        otp_cert.serial_number, "x"
    )
