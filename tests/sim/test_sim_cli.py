"""`nusec sim` as an operator runs it: real CLI subprocesses on a private simulator directory,
checked against the board files and against a board opened in-process (the silicon's view)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from nuboard.keyslots import IDENTITY_SLOT
from nuboard.protocol import BootFailReason
from nusec.board.channel import BoardBootFailed, BoardChannel
from nusim import fmc, memmap
from nusim.board import Board, board_uid
from nusim.nvstate import NvStore
from tests.sim.firmware_board import (
    FIRMWARE,
    burn_rotpk,
    imgtool_sign,
    isp,
    make_identity_key,
    program,
    write_key_pem,
)
from tests.sim.sim_helpers import isp as sim_isp
from tests.sim.sim_helpers import isp_wait

NUSEC = Path(sys.executable).parent / "nusec"


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def json(self) -> dict[str, object]:
        obj = json.loads(self.out.strip().splitlines()[-1])
        assert isinstance(obj, dict)
        return obj


def nusec(*args: str) -> Result:
    proc = subprocess.run([str(NUSEC), "sim", *args], capture_output=True, text=True, timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def one_line_error(res: Result, needle: str) -> None:
    assert res.rc == 1, res
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.err


@pytest.fixture(scope="module")
def signed_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    d = tmp_path_factory.mktemp("fw")
    key = ec.generate_private_key(ec.SECP256R1())
    return key, imgtool_sign(FIRMWARE, d / "signed.bin", write_key_pem(key, d / "sb.pem"))


def make_booting_board(sim_dir: Path, name: str, signed: tuple[ec.EllipticCurvePrivateKey, bytes]) -> bytes:
    """A board with the SecureBoot key, the signed firmware and an identity key, powered off.
    Returns the identity key's bits as the state file holds them (to prove nobody prints them)."""
    key, image = signed
    with Board.open(name, sim_dir) as board:
        burn_rotpk(board, key.public_key())
        program(board, memmap.FLASH_BASE, image)
        make_identity_key(board)
        board.reset()
    ks0 = NvStore(sim_dir, name).load().ks_otp[IDENTITY_SLOT]
    assert ks0 is not None
    return ks0.data


@pytest.fixture
def uart_server(sim_dir: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """UART servers started by a test; each is terminated and reaped at the end."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        assert p.stdout is not None and p.stderr is not None
        p.stdout.close()
        p.stderr.close()


def start_uart(
    procs: list[subprocess.Popen[str]], *args: str
) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [str(NUSEC), "sim", "uart", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    obj = json.loads(line)
    assert isinstance(obj, dict)
    return proc, obj


# -- create / list / erase ----------------------------------------------------------------------
def test_create_list_and_refusals(sim_dir: Path) -> None:
    res = nusec("create", "b1", "--json")
    assert res.rc == 0, res
    made = res.json()
    assert made["uid"] == board_uid("b1").hex() and made["probe"] == "sim:b1"
    assert (sim_dir / "b1.json").is_file()

    one_line_error(nusec("create", "sim:b1"), "already exists")
    one_line_error(nusec("create", "../evil"), "invalid board name")
    assert not (sim_dir.parent / "evil.json").exists()

    listed = nusec("list", "--json").json()
    assert listed["directory"] == str(sim_dir)
    rows = listed["boards"]
    assert isinstance(rows, list)
    (row,) = rows
    assert row == {
        "name": "b1",
        "uid": board_uid("b1").hex(),
        "secure_locked": False,
        "all_locked": False,
        "secure_boot_key": False,
        "otp_programmed_entries": 0,
        "otp_locked_entries": 0,
        "firmware": False,
        "in_use": False,
    }
    human = nusec("list")
    assert human.rc == 0 and "b1" in human.out and board_uid("b1").hex() in human.out


def test_dir_option_beats_the_environment(sim_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    assert nusec("create", "x1", "--dir", str(other)).rc == 0
    assert (other / "x1.json").is_file() and not (sim_dir / "x1.json").exists()
    assert [b["name"] for b in nusec("list", "--dir", str(other), "--json").json()["boards"]] == ["x1"]  # type: ignore[attr-defined]
    assert nusec("list", "--json").json()["boards"] == []


def test_erase_needs_yes_and_an_existing_idle_board(sim_dir: Path) -> None:
    assert nusec("create", "b2").rc == 0
    assert nusec("faults", "b2", "--fail-isp", "2").rc == 0
    one_line_error(nusec("erase", "b2"), "--yes")
    assert (sim_dir / "b2.json").is_file()
    with Board.open("b2", sim_dir):
        one_line_error(nusec("erase", "b2", "--yes"), "in use")
        assert nusec("list", "--json").json()["boards"][0]["in_use"] is True  # type: ignore[index]
    res = nusec("erase", "b2", "--yes", "--json")
    assert res.rc == 0, res
    assert not (sim_dir / "b2.json").exists() and not (sim_dir / "b2.faults.json").exists()
    one_line_error(nusec("erase", "b2", "--yes"), "no simulated board 'b2'")
    assert nusec("create", "b2").rc == 0  # a fresh, blank part again
    assert NvStore(sim_dir, "b2").load().otp == bytearray(b"\xff" * memmap.OTP_SIZE)


# -- show ---------------------------------------------------------------------------------------
def test_show_reports_fields_keys_counts_and_boots_without_key_bits(
    sim_dir: Path, signed_image: tuple[ec.EllipticCurvePrivateKey, bytes]
) -> None:
    secret = make_booting_board(sim_dir, "fw1", signed_image)
    with Board.open("fw1", sim_dir) as board:  # lock entries 17-24 (the SecureBoot key) via the FMC
        for n in range(17, 25):
            isp(board, fmc.CMD_PROGRAM, memmap.OTP_LOCK_BASE + 4 * n, 0)

    res = nusec("show", "fw1", "--json")
    assert res.rc == 0, res
    assert secret.hex() not in res.out.lower()
    info = res.json()
    assert info["secure_boot_key"] is True and info["firmware"] is True
    assert info["otp_programmed_entries"] == 8 and info["otp_locked_entries"] == 8
    fields = {f["field"]: f for f in info["otp_fields"]}  # type: ignore[attr-defined]
    assert fields["secure_boot_pub"]["programmed"] == 8 and fields["secure_boot_pub"]["locked"] == 8
    assert fields["secure_boot_pub"]["entries"] == [17, 24]
    assert all(f["programmed"] == 0 for name, f in fields.items() if name != "secure_boot_pub")
    assert info["keystore"] == [
        {
            "bank": "otp",
            "slot": IDENTITY_SLOT,
            "metadata": info["keystore"][0]["metadata"],  # type: ignore[index]
            "owner": "ECC",
            "bits": 256,
            "readable": False,
            "revoked": False,
        }
    ]
    counts = info["program_counts"]
    assert counts["max_per_word"] == 1 and counts["max_per_lock_word"] == 1  # type: ignore[index]
    assert counts["otp_words"][17 * 2 : 25 * 2] == [1] * 16  # type: ignore[index]
    assert sum(counts["otp_words"]) == 16 and sum(counts["otp_locks"]) == 8  # type: ignore[index]
    assert info["last_boot"]["booted"] is True  # type: ignore[index]
    assert info["last_boot"]["image_version"] == "1.0.0+0"  # type: ignore[index]
    assert info["next_boot"]["boots"] is True  # type: ignore[index]
    assert info["lock_words"]["SCRLOCK"] == {  # type: ignore[index]
        "address": "0x0f30002c",
        "value": "0xffffff5a",
        "locked": False,
    }

    human = nusec("show", "sim:fw1")
    assert human.rc == 0 and "secure_boot_pub" in human.out and "ECC 256-bit" in human.out
    assert secret.hex() not in human.out.lower()
    one_line_error(nusec("show", "nope"), "no simulated board 'nope'")


def test_program_counts_record_a_second_attempt_and_persist(sim_dir: Path) -> None:
    """The counter counts PROGRAMs that reach a word, refused ones too: the second write of an
    OTP word is refused by the physics but still shows up, which is what resume tests need."""
    word = memmap.OTP_BASE + 8 * 40 + 4
    with Board.open("c1", sim_dir) as board:
        isp(board, fmc.CMD_PROGRAM, word, 0x1234_5678)
        base = memmap.FMC_BASE
        board.write32(base + fmc.ISPADDR, word)
        board.write32(base + fmc.ISPDAT, 0)
        board.write32(base + fmc.ISPTRG, fmc.ISPTRG_ISPGO)
        isp_wait(board)
        assert board.read32(base + fmc.ISPCTL) & fmc.ISPCTL_ISPFF  # refused: already programmed
        board.write32(base + fmc.ISPCTL, fmc.ISPCTL_ISPEN | fmc.ISPCTL_ISPFF)  # write 1 to clear
        isp(board, fmc.CMD_PROGRAM, memmap.OTP_LOCK_BASE + 4 * 40, 0)
        assert board.otp_program_counts[40] == 2
        isp(board, fmc.CMD_PROGRAM, memmap.FLASH_BASE, 0)  # flash is not counted
    # Kill-proof: read back from the file, the way a test of a resumed run does.
    counts = NvStore(sim_dir, "c1").load().program_counts
    assert counts.otp_words[81] == 2 and counts.otp_words[80] == 0
    assert counts.otp_locks[40] == 1 and sum(counts.otp_locks) == 1
    assert counts.per_entry()[40] == 2 and sum(counts.per_entry()) == 2
    info = nusec("show", "c1", "--json").json()
    assert info["program_counts"]["entries_written_more_than_once"] == [40]  # type: ignore[index]
    assert info["program_counts"]["max_per_word"] == 2  # type: ignore[index]


def test_state_files_without_counters_still_load(sim_dir: Path) -> None:
    assert nusec("create", "old").rc == 0
    path = sim_dir / "old.json"
    obj = json.loads(path.read_text())
    del obj["program_counts"], obj["last_boot"]
    path.write_text(json.dumps(obj))
    info = nusec("show", "old", "--json").json()
    assert info["program_counts"]["max_per_word"] == 0 and info["last_boot"] is None  # type: ignore[index]
    obj["program_counts"] = {"otp_words": [0], "otp_locks": []}
    path.write_text(json.dumps(obj))
    one_line_error(nusec("show", "old"), "malformed program_counts")


# -- faults -------------------------------------------------------------------------------------
def test_faults_arm_fire_once_and_clear(sim_dir: Path) -> None:
    assert nusec("create", "f1").rc == 0
    one_line_error(nusec("faults", "nope", "--fail-isp", "1"), "no simulated board 'nope'")
    res = nusec("faults", "f1", "--fail-isp", "1", "--drop-after", "500", "--json")
    assert res.rc == 0, res
    assert res.json()["faults"] == {"fail_program": 1, "drop_link_after": 500}
    assert nusec("faults", "f1", "--power-loss-otp", "0").rc == 2  # usage error: 1-based

    with Board.open("f1", sim_dir) as board:
        assert board.faults.fail_program == 1 and board.faults.drop_link_after == 500
        _, failed = sim_isp(board, fmc.CMD_PROGRAM, memmap.OTP_BASE, 0)
        assert failed  # the injected failure
        one_line_error(nusec("faults", "f1", "--fail-isp", "2"), "in use")
    shown = nusec("faults", "f1", "--json").json()["faults"]
    assert shown == {"fail_program": 1, "drop_link_after": 500, "fired": ["fail_program"]}
    assert NvStore(sim_dir, "f1").load().program_counts.otp_words[0] == 1  # the failed attempt counts

    assert nusec("faults", "f1", "--power-loss-program", "3", "--json").json()["faults"] == {
        "power_loss_program": 3
    }
    with Board.open("f1", sim_dir) as board:
        assert board.faults.power_loss_program == 3 and board.faults.fail_program is None
    cleared = nusec("faults", "f1", "--clear", "--json")
    assert cleared.rc == 0 and cleared.json()["cleared"] is True
    assert not (sim_dir / "f1.faults.json").exists()
    one_line_error(nusec("faults", "f1", "--clear", "--fail-isp", "1"), "--clear")


# -- uart ---------------------------------------------------------------------------------------
def test_uart_tcp_serves_the_secure_booted_firmware(
    sim_dir: Path,
    signed_image: tuple[ec.EllipticCurvePrivateKey, bytes],
    uart_server: list[subprocess.Popen[str]],
) -> None:
    make_booting_board(sim_dir, "u1", signed_image)
    proc, started = start_uart(uart_server, "sim:u1", "--tcp", "0")
    assert started["booted"] is True
    address = str(started["address"])
    assert address.startswith("socket://127.0.0.1:")

    with BoardChannel.open(address, timeout=5.0) as ch:
        info = ch.version()
        assert info.protocol == 1 and info.name == "nusec-ref-fw"
        assert ch.uid() == board_uid("u1")

    one_line_error(nusec("erase", "u1", "--yes"), "in use")  # the server holds the board
    one_line_error(nusec("uart", "u1", "--tcp", "0"), "in use")

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert nusec("list", "--json").json()["boards"][0]["in_use"] is False  # type: ignore[index]
    last = NvStore(sim_dir, "u1").load().last_boot
    assert last is not None and last.booted


def test_uart_pty_on_a_board_that_refuses_to_boot(
    sim_dir: Path, uart_server: list[subprocess.Popen[str]]
) -> None:
    assert nusec("create", "blank").rc == 0
    proc, started = start_uart(uart_server, "blank", "--pty")
    assert started["booted"] is False and started["boot"]["reason"] == "NO_ROTPK"  # type: ignore[index]
    assert str(started["address"]).startswith("/dev/pts/")
    with BoardChannel.open(str(started["address"]), timeout=3.0) as ch:
        with pytest.raises(BoardBootFailed) as err:
            ch.version()
        assert err.value.reason == BootFailReason.NO_ROTPK
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_uart_refuses_unknown_boards_and_two_transports(sim_dir: Path) -> None:
    one_line_error(nusec("uart", "ghost", "--tcp", "0"), "no simulated board 'ghost'")
    assert not (sim_dir / "ghost.json").exists()  # it did not create one by opening it
    assert nusec("create", "b3").rc == 0
    one_line_error(nusec("uart", "b3", "--tcp", "0", "--pty"), "one of --tcp")


def test_help_teaches_with_an_example() -> None:
    res = subprocess.run([str(NUSEC), "sim", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "nusec sim create b1" in res.stdout and "sim:b1" in res.stdout
    for cmd in ("list", "create", "show", "uart", "faults", "erase"):
        sub = subprocess.run([str(NUSEC), "sim", cmd, "--help"], capture_output=True, text=True, timeout=60)
        assert sub.returncode == 0 and "Example" in sub.stdout, cmd
