"""``Board.lock``: a UART server thread and a pyocd session in one process take turns on the core
instead of running it at the same time (the firmware engineer's request)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pyocd.core.helpers import ConnectHelper

from nuboard.protocol import Command, FrameDecoder, encode
from nusec.board.channel import BoardChannel
from nusim import memmap
from nusim.board import Board
from nusim.cpu import RunResult
from nusim.uart import UartServer
from tests.sim.firmware_board import (
    FIRMWARE,
    burn_rotpk,
    imgtool_sign,
    make_identity_key,
    program,
    write_key_pem,
)


@pytest.fixture(scope="module")
def signed_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    d = tmp_path_factory.mktemp("fw")
    key = ec.generate_private_key(ec.SECP256R1())
    return key, imgtool_sign(FIRMWARE, d / "signed.bin", write_key_pem(key, d / "sb.pem"))


@pytest.fixture
def booting_board(sim_dir: Path, signed_image: tuple[ec.EllipticCurvePrivateKey, bytes]) -> Iterator[str]:
    key, image = signed_image
    with Board.open("lk1", sim_dir) as board:
        burn_rotpk(board, key.public_key())
        program(board, memmap.FLASH_BASE, image)
        make_identity_key(board)
    yield "lk1"


def test_a_held_lock_stops_the_uart_server_until_released(booting_board: str, sim_dir: Path) -> None:
    with Board.open(booting_board, sim_dir) as board, UartServer(board, "tcp") as server:
        port = int(server.address.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            with board.lock:
                sock.sendall(encode(Command.VERSION))
                sock.settimeout(0.4)
                with pytest.raises(TimeoutError):
                    sock.recv(64)  # the core cannot run while another thread holds the board
            sock.settimeout(5)
            decoder = FrameDecoder()
            frame = None
            while frame is None:
                data = sock.recv(64)
                assert data, "server closed the connection"
                decoder.feed(data)
                frame = decoder.next_frame()
            assert frame.cmd == Command.VERSION | 0x80 and frame.payload[0] == 0


def test_pyocd_session_and_uart_server_never_run_the_core_at_once(booting_board: str) -> None:
    session = ConnectHelper.session_with_chosen_probe(
        unique_id=f"sim:{booting_board}", options={"connect_mode": "attach"}
    )
    assert session is not None
    with session:
        board = session.probe.board
        target = session.target
        active = 0
        overlap = 0
        runners: set[str] = set()
        unlocked: list[str] = []
        guard = threading.Lock()
        real_run = board.cpu.run

        def tracked_run(n: int) -> RunResult:
            nonlocal active, overlap
            with guard:
                active += 1
                overlap = max(overlap, active)
                runners.add(threading.current_thread().name)
            # Deterministic, not a widened race window: every run of the core happens with the
            # board lock held by the thread that runs it.
            if not board.lock._is_owned():  # CPython's RLock
                unlocked.append(threading.current_thread().name)
            try:
                result: RunResult = real_run(n)
                return result
            finally:
                with guard:
                    active -= 1

        board.cpu.run = tracked_run
        answers: list[str] = []
        errors: list[BaseException] = []

        with UartServer(board, "tcp") as server:

            def client() -> None:
                try:
                    with BoardChannel.open(server.address, timeout=10.0) as ch:
                        for _ in range(5):
                            answers.append(ch.version().name)
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

            t = threading.Thread(target=client, name="uart-client")
            t.start()
            polls = 0
            while t.is_alive() and polls < 5000:
                target.get_state()  # a DHCSR poll: the debugger path runs the core too
                polls += 1
            t.join(timeout=30)
        assert not errors, errors
        assert answers == ["nusec-ref-fw"] * 5
        assert not unlocked, f"the core ran without the board lock in {sorted(set(unlocked))}"
        assert overlap == 1
        assert "MainThread" in runners and f"uart-{booting_board}" in runners
