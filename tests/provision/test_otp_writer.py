"""OTP writer rules, through pyocd against the simulated board (FMC ISP, write-once physics).

Oracle: the board's own state file (what the simulated silicon holds), never the writer's view.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nusec.provision.errors import BoardUnreachable, OtpConflict, ProvisionError
from nusec.provision.link import SwdLink, board_errors
from nusec.provision.otp_writer import OTP_BASE, OtpWriter, ProgramLog
from tests.provision.conftest import BoardFile, faults


def _image(entries: dict[int, bytes]) -> bytes:
    img = bytearray(b"\xff" * 2048)
    for n, data in entries.items():
        img[8 * n : 8 * n + 8] = data
    return bytes(img)


WANT = _image({3: bytes(range(8)), 4: b"\x00\x11\x22\x33\xff\xff\xff\xff", 5: b"\xff" * 8})


def test_write_then_resume_writes_nothing_twice(sim_dir: Path, tmp_path: Path) -> None:
    log = ProgramLog(tmp_path / "log.jsonl")
    with SwdLink("sim:w1") as link:
        res = OtpWriter(link.isp(), log).write_entries(WANT, [3, 4, 5])
    # entry 3: two words, entry 4: one non-blank word, entry 5 stays blank; three lock words
    assert (res.programmed_words, res.locked_entries) == (3, 3)
    board = BoardFile.load(sim_dir, "w1")
    assert board.otp[24:48] == WANT[24:48]
    assert board.locked_entries() == [3, 4, 5]
    with SwdLink("sim:w1") as link:
        again = OtpWriter(link.isp(), ProgramLog(tmp_path / "log.jsonl")).write_entries(WANT, [3, 4, 5])
    assert (again.programmed_words, again.locked_entries, again.already_locked) == (0, 0, 3)
    assert ProgramLog(tmp_path / "log.jsonl").max_count() == 1


def test_conflicting_entry_stops_before_any_write(sim_dir: Path) -> None:
    with SwdLink("sim:w2") as link:
        OtpWriter(link.isp(), ProgramLog()).write_entries(_image({7: b"\x01" * 8}), [7])
    before = BoardFile.load(sim_dir, "w2")
    other = _image({6: b"\x02" * 8, 7: b"\x03" * 8})
    with SwdLink("sim:w2") as link, pytest.raises(OtpConflict, match="entry 7 word 0"):
        OtpWriter(link.isp(), ProgramLog()).write_entries(other, [6, 7])
    after = BoardFile.load(sim_dir, "w2")
    assert after.otp == before.otp and after.otp_locks == before.otp_locks  # entry 6 untouched too


def test_dry_run_reads_only(sim_dir: Path) -> None:
    with SwdLink("sim:w3") as link:
        plan = OtpWriter(link.isp(), ProgramLog()).write_entries(WANT, [3, 4, 5], dry_run=True)
    assert (plan.programmed_words, plan.locked_entries) == (3, 3)
    board = BoardFile.load(sim_dir, "w3")
    assert board.otp == b"\xff" * 2048 and board.locked_entries() == []


def test_program_log_refuses_a_second_burn(tmp_path: Path) -> None:
    log = ProgramLog(tmp_path / "l.jsonl")
    log.intent(OTP_BASE)
    ProgramLog(tmp_path / "l.jsonl").intent(OTP_BASE)  # never completed: a retry is allowed
    log.done(OTP_BASE)
    with pytest.raises(OtpConflict, match="second PROGRAM"):
        ProgramLog(tmp_path / "l.jsonl").intent(OTP_BASE)


def test_refused_program_is_retried_only_while_blank(sim_dir: Path, tmp_path: Path) -> None:
    faults(sim_dir, "w6", fail_program=1)  # the FMC refuses the first PROGRAM (ISPFF), nothing changes
    img = _image({9: b"\x00" * 8})
    log_path = tmp_path / "log.jsonl"
    with SwdLink("sim:w6") as link, pytest.raises(ProvisionError, match="ISPFF"):
        OtpWriter(link.isp(), ProgramLog(log_path)).write_entries(img, [9])
    assert BoardFile.load(sim_dir, "w6").otp[72:80] == b"\xff" * 8
    with SwdLink("sim:w6") as link:
        OtpWriter(link.isp(), ProgramLog(log_path)).write_entries(img, [9])
    assert BoardFile.load(sim_dir, "w6").otp[72:80] == b"\x00" * 8
    assert ProgramLog(log_path).max_count() == 1


def test_torn_write_is_detected_and_never_reburned(sim_dir: Path) -> None:
    faults(sim_dir, "w4", power_loss_program=2)  # the second PROGRAM tears and the power goes
    img = _image({9: b"\x00" * 8})
    with SwdLink("sim:w4") as link, pytest.raises(BoardUnreachable), board_errors("writing OTP"):
        OtpWriter(link.isp(), ProgramLog()).write_entries(img, [9])
    torn = BoardFile.load(sim_dir, "w4").otp[72:80]
    assert torn not in (b"\xff" * 8, b"\x00" * 8)
    with SwdLink("sim:w4") as link, pytest.raises(OtpConflict, match="neither blank nor"):
        OtpWriter(link.isp(), ProgramLog()).write_entries(img, [9])
    assert BoardFile.load(sim_dir, "w4").otp[72:80] == torn


def test_link_drop_mid_write_resumes_cleanly(sim_dir: Path, tmp_path: Path) -> None:
    faults(sim_dir, "w5", drop_link_after=150)
    log_path = tmp_path / "log.jsonl"
    with SwdLink("sim:w5") as link, pytest.raises(BoardUnreachable), board_errors("writing OTP"):
        w = OtpWriter(link.isp(), ProgramLog(log_path))
        for _ in range(3):  # the drop lands somewhere inside the writes
            w.write_entries(WANT, [3, 4, 5])
    with SwdLink("sim:w5") as link:
        OtpWriter(link.isp(), ProgramLog(log_path)).write_entries(WANT, [3, 4, 5])
    board = BoardFile.load(sim_dir, "w5")
    assert board.otp == WANT and board.locked_entries() == [3, 4, 5]
    assert ProgramLog(log_path).max_count() == 1
