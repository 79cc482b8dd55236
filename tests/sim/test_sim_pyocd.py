"""pyocd's own tools against the simulated probe: commander and gdbserver, in subprocesses."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.sim.sim_helpers import PYOCD, sim_env


def test_commander_reads_and_writes_sram(sim_dir: Path) -> None:
    out = subprocess.run(
        [
            str(PYOCD),
            "commander",
            "-u",
            "sim:b1",
            "-c",
            "write32 0x20000000 0x1234abcd",
            "-c",
            "read32 0x20000000",
        ],
        env=sim_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "1234abcd" in out.stdout
    assert (sim_dir / "b1.json").is_file()  # the board now exists


def test_commander_lists_and_halts_core(sim_dir: Path) -> None:
    out = subprocess.run(
        [str(PYOCD), "commander", "-u", "sim:b2", "-c", "halt", "-c", "status", "-c", "read32 0xE000ED00"],
        env=sim_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Halted" in out.stdout
    assert "411fd220" in out.stdout  # CPUID of the simulated Cortex-M55


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _packet(payload: str) -> bytes:
    return f"${payload}#{sum(payload.encode()) % 256:02x}".encode()


def test_gdbserver_answers_remote_protocol(sim_dir: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(PYOCD), "gdbserver", "-u", "sim:b3", "--port", str(port), "--persist"],
        env=sim_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        sock = None
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        assert sock is not None, "gdbserver did not listen"
        with sock:
            sock.settimeout(15)
            sock.sendall(_packet("qSupported:multiprocess+"))
            data = b""
            while b"PacketSize" not in data or not data.rstrip().endswith(
                tuple(bytes([c]) for c in b"0123456789abcdef")
            ):
                chunk = sock.recv(4096)
                assert chunk, "gdbserver closed the connection"
                data += chunk
                if b"#" in data.split(b"PacketSize", 1)[-1]:
                    break
            assert b"PacketSize" in data
            sock.sendall(b"+" + _packet("?"))  # halt reason: the core is halted on attach
            reply = b""
            while b"#" not in reply:
                reply += sock.recv(4096)
            assert b"$S" in reply or b"$T" in reply
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_breakpoints_and_step_through_pyocd(sim_dir: Path) -> None:
    """FPB (hardware) and BKPT (software) breakpoints, halt reasons and single step."""
    from pyocd.core.target import Target

    from nusec.board.snippet import SNIPPET_LOAD_ADDR, KeyGenSnippet
    from tests.sim.sim_helpers import session

    with session("bp") as s:
        t = s.target
        KeyGenSnippet(t).load()
        call = SNIPPET_LOAD_ADDR + 4  # the entry stub's `bl snippet_main`
        for kind in (Target.BreakpointType.HW, Target.BreakpointType.SW):
            t.write_core_register("pc", SNIPPET_LOAD_ADDR)
            assert t.set_breakpoint(call, kind)
            t.resume()
            deadline = time.monotonic() + 10
            while t.get_state() != Target.State.HALTED:
                assert time.monotonic() < deadline
            assert t.read_core_register("pc") == call
            assert t.get_halt_reason() == Target.HaltReason.BREAKPOINT
            t.remove_breakpoint(call)
            t.step()
            pc = t.read_core_register("pc")
            assert SNIPPET_LOAD_ADDR < pc < SNIPPET_LOAD_ADDR + 0x6000 and pc != call + 4  # took the call
