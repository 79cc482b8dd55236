"""The bad-input tour: every wrong input an operator can type ends in one line on stderr and the
exit code docs/provisioning.md gives it, and nothing reaches the board (its simulator state file
is never even created, or stays byte-identical). Also: exact probe ids, and plain HTTP refused
before any connection."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from nusec.cli import app
from nusec.provision import link
from nusec.provision.errors import BoardUnreachable
from nusim.boards import create_board
from pki.service.server import ServiceHandle
from tests.provision.conftest import FIRMWARE
from tests.provision.forge import look_alike_root_pem
from tests.service.conftest import Pki
from tests.tools import tool

ROOT = Path(__file__).resolve().parents[2]
IMGTOOL = tool("imgtool")
DOC = ROOT / "docs" / "provisioning.md"


def documented_exit_codes() -> set[int]:
    """The codes of the exit-code table of docs/provisioning.md."""
    text = DOC.read_text()
    table = text[text.index("## Exit codes") :]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}


def _args(service: ServiceHandle, pki: Pki, journal: Path, probe: str, **over: str) -> list[str]:
    opts = {
        "--probe": probe,
        "--server": service.url,
        "--firmware": str(FIRMWARE),
        "--ca": str(pki.chain_pem),
        "--client-cert": str(pki.operator_cert),
        "--client-key": str(pki.operator_key),
        "--journal": str(journal),
        **over,
    }
    out = ["provision"]
    for k, v in opts.items():
        out += [k, v]
    return out


def _unsigned_mcuboot(tmp: Path) -> Path:
    """An unsigned MCUboot image of the reference firmware, made by imgtool (no key)."""
    out = tmp / "unsigned.bin"
    subprocess.run(
        [str(IMGTOOL), "create", "--version", "1.0.0", "--header-size", "0x20", "--pad-header",
         "--slot-size", "0x40000", str(FIRMWARE), str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def test_bad_input_tour(service: ServiceHandle, pki_files: Pki, sim_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    rnd = random.Random(13)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    short = tmp_path / "short.bin"
    short.write_bytes(b"\x00\x00\x11\x20\x65\x00\x10")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(_unsigned_mcuboot(tmp_path).read_bytes()[:1500])
    noise = tmp_path / "random.bin"
    noise.write_bytes(bytes([0xEE, 0xEE, 0xEE, 0xEE]) + rnd.randbytes(4092))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    other_root = tmp_path / "other-root.pem"
    other_root.write_text(look_alike_root_pem())
    create_board("line7-board", sim_dir)
    before = (sim_dir / "line7-board.json").read_bytes()
    http_host = service.url.replace("https://127.0.0.1", "http://oem.example")

    tour: list[tuple[str, dict[str, str], int, str]] = [
        ("empty firmware", {"--firmware": str(empty)}, 2, "is empty"),
        ("short firmware", {"--firmware": str(short)}, 2, "cannot hold a Cortex-M vector table"),
        (
            "truncated MCUboot image",
            {"--firmware": str(truncated)},
            2,
            "runs past the end of the data (header 32 + image 5408 bytes, have 1500)",
        ),
        ("random firmware", {"--firmware": str(noise)}, 2, "does not start with a Cortex-M vector table"),
        ("firmware is a directory", {"--firmware": str(tmp_path)}, 2, "is a directory"),
        ("garbage client certificate", {"--client-cert": str(garbage)}, 2, f"--client-cert {garbage}"),
        ("garbage client key", {"--client-key": str(garbage)}, 2, f"--client-key {garbage}"),
        ("key of another certificate", {"--client-key": str(pki_files.admin_key)}, 2, "does not belong to"),
        ("garbage CA file", {"--ca": str(garbage)}, 2, f"--ca {garbage}"),
        ("wrong CA", {"--ca": str(other_root)}, 3, "not authenticated by --ca"),
        (
            "service name not in its certificate",  # its certificate names 127.0.0.1 only
            {"--server": service.url.replace("127.0.0.1", "localhost")},
            3,
            "its name does not match its certificate",
        ),
        (
            "client certificate the service refuses",
            {"--client-cert": str(pki_files.rogue_cert), "--client-key": str(pki_files.rogue_key)},
            6,
            "refused this client certificate",
        ),
        ("unknown probe (a substring of another)", {"--probe": "e7-b"}, 4, "no probe with unique id 'e7-b'"),
        ("http:// to a remote name", {"--server": http_host}, 2, "plain HTTP"),
        (
            "http:// to loopback without --insecure-dev",
            {"--server": service.url.replace("https", "http")},
            2,
            "--insecure-dev",
        ),
    ]
    codes = documented_exit_codes()
    for i, (what, over, code, needle) in enumerate(tour):
        probe = over.pop("--probe", f"sim:tour{i}")
        args = _args(service, pki_files, tmp_path / "j", probe, **over)
        with pytest.MonkeyPatch.context() as mp:
            if "http://" in over.get("--server", ""):  # refused before any connection is even tried
                mp.setattr(httpx.Client, "send", lambda *a, **k: pytest.fail("a connection was attempted"))
            out = runner.invoke(app, args)
        lines = out.stderr.strip().splitlines()
        assert out.exit_code == code, (what, out.exit_code, out.stderr, out.stdout)
        assert code in codes, f"{what}: exit {code} is not in the docs' table"
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr, (what, out.stderr)
        assert not (sim_dir / f"tour{i}.json").exists(), f"{what}: the board was opened"
    assert (sim_dir / "line7-board.json").read_bytes() == before  # the near miss was never opened


def test_probe_ids_match_exactly_with_only_the_sim_prefix_folded(sim_dir: Path) -> None:
    create_board("line7-board", sim_dir)
    for near in ("e7-b", "line7-board", "LINE7-BOARD"):  # substrings, a missing or refolded prefix
        with pytest.raises(BoardUnreachable, match="must match exactly"):
            link.find_probe(near)
    assert str(link.find_probe("SIM:line7-board").unique_id) == "sim:line7-board"
    assert link.normalise_probe_id("SIM:x") == link.normalise_probe_id("sim:x") == "sim:x"
    assert link.normalise_probe_id("x") == "x" and link.normalise_probe_id("sim:X") == "sim:X"


def test_duplicate_probes_are_found_on_the_normalised_id(
    service: ServiceHandle, pki_files: Pki, sim_dir: Path, tmp_path: Path
) -> None:
    args = _args(service, pki_files, tmp_path / "j", "sim:dup1")
    out = CliRunner().invoke(app, [*args, "--probe", "SIM:dup1"])
    assert out.exit_code == 2 and "names the same probe" in out.stderr, out.stderr
    assert not (sim_dir / "dup1.json").exists()


def test_insecure_dev_plain_http_to_loopback_is_allowed(pki_files: Pki) -> None:
    from nusec.provision.preflight import check_server_url

    assert check_server_url("http://127.0.0.1:8000/", insecure_dev=True) == "http://127.0.0.1:8000"
    assert check_server_url("http://[::1]:8000", insecure_dev=True)
    for bad in ("http://10.0.0.1:8000", "http://oem.example", "http://localhost.evil.example"):
        with pytest.raises(Exception, match="loopback"):
            check_server_url(bad, insecure_dev=True)
