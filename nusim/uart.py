"""UART0 of the simulated board (M55M1 UART0_BASE 0x4024D000) and its host end.

The firmware's command channel (docs/board-protocol.md) runs over this UART. On the bus it is a
Nuvoton UART reduced to what a polled driver uses: DAT 0x00 (read pops the receive FIFO, write
transmits), FIFOSTS 0x18 (RXEMPTY b14, RXFULL b15, RXPTR b8-13, TXEMPTY b22, TXFULL b23,
TXEMPTYF b28), FIFO 0x08 (RXRST b1), plus plain storage for the other registers (INTEN, LINE,
BAUD, FUNCSEL...). Transmission is instant: a byte written to DAT is on the host side at once.

The core only runs inside ``Board.run``, so the host end drives it:

- ``UartLink`` (in-process, for tests and the provisioning flow): ``write``/``read`` like a
  pyserial port; ``read`` runs the core until the bytes are there. Time is virtual: each poll of
  an empty receive FIFO ends a run slice (``StopReason.YIELD``) and counts as one 1 ms idle tick.
- ``UartServer``: the same UART on a pseudo-terminal (``/dev/pts/N``, open it with pyserial like
  a real board's port) or a TCP loopback socket (``socket://127.0.0.1:PORT``). A thread owns the
  core while it serves; idle ticks are real milliseconds there.

A board whose boot ROM refused the image (``nusim.bootrom``) answers every frame with the
BOOT_FAIL frame, as the part's ROM does on its console.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import tty
import weakref
from collections import deque

from nusim.board import Board, CoreState, Master, WordDevice
from nusim.cpu import StopReason

UART0_BASE = 0x4024_D000  # M55M1.h: APB0PERIPH_BASE (0x40240000) + 0xD000
UART_BLOCK = 0x1000

DAT = 0x00
FIFO = 0x08
LINE = 0x0C  # stored only: the line settings do not matter on a simulated wire
LINE_WLS_8BIT = 0x3
FIFOSTS = 0x18
FIFO_RXRST = 1 << 1
FIFOSTS_RXPTR_SHIFT = 8
FIFOSTS_RXEMPTY = 1 << 14
FIFOSTS_RXFULL = 1 << 15
FIFOSTS_TXEMPTY = 1 << 22
FIFOSTS_TXFULL = 1 << 23
FIFOSTS_TXEMPTYF = 1 << 28
HW_FIFO_DEPTH = 16  # what RXPTR/RXFULL report; the host side buffers the rest
RX_LIMIT = 64 * 1024  # bytes the host may queue before further input is dropped (overrun)
SOF = 0xA5

RUN_SLICE = 200_000  # instructions per Board.run call while pumping
IDLE_TICK_S = 0.001  # one empty-FIFO poll = one millisecond of line idle time


class Uart0(WordDevice):
    """UART0 registers and the two byte queues between the board and the host."""

    def __init__(self, board: Board) -> None:
        self._board = board
        self._rx: deque[int] = deque()  # host -> board
        self._tx = bytearray()  # board -> host
        self._regs: dict[int, int] = {}
        self._lock = threading.Lock()
        self.overrun = False
        self._yielded = False
        self.boot_fail_reply: bytes | None = None  # set by the boot ROM when it refuses the image

    # -- the bus side -------------------------------------------------------------------------
    def read32(self, offset: int, master: Master) -> int:
        if offset == DAT:
            with self._lock:
                if master is Master.DEBUGGER or not self._rx:
                    value = 0  # the debugger's reads have no side effects
                else:
                    return self._rx.popleft()
            if master is Master.CPU:
                self._yield_to_host()
            return value
        if offset == FIFOSTS:
            with self._lock:
                pending = len(self._rx)
            status = FIFOSTS_TXEMPTY | FIFOSTS_TXEMPTYF
            status |= min(pending, HW_FIFO_DEPTH - 1) << FIFOSTS_RXPTR_SHIFT
            if pending >= HW_FIFO_DEPTH:
                status |= FIFOSTS_RXFULL
            if pending == 0:
                status |= FIFOSTS_RXEMPTY
                if master is Master.CPU:
                    self._yield_to_host()
            return status
        return self._regs.get(offset, 0)

    def _yield_to_host(self) -> None:
        """Give the host a turn on every other empty poll. Stopping the core inside a load makes
        unicorn run that load again on resume; the second time it completes, so a polling loop
        advances (and its timeout counts) instead of spinning on one instruction."""
        self._yielded = not self._yielded
        if self._yielded:
            self._board.cpu.stop(StopReason.YIELD)

    def write(self, offset: int, size: int, value: int, master: Master) -> None:
        if offset & ~3 == DAT:  # byte stores to DAT must not read (and so pop) the RX FIFO
            self.write32(DAT, value, master)
            return
        super().write(offset, size, value, master)

    def write32(self, offset: int, value: int, master: Master) -> None:
        if offset == DAT:
            with self._lock:
                self._tx.append(value & 0xFF)
            return
        if offset == FIFO and value & FIFO_RXRST:
            with self._lock:
                self._rx.clear()
            value &= ~FIFO_RXRST  # self-clearing
        self._regs[offset] = value

    def reset(self) -> None:
        """Peripheral reset: registers and the receive FIFO clear; bytes already sent stay sent."""
        with self._lock:
            self._rx.clear()
            self._regs.clear()
            self.overrun = False
            self.boot_fail_reply = None

    # -- the host side ------------------------------------------------------------------------
    def host_write(self, data: bytes) -> None:
        """Bytes arriving on the board's RX pin."""
        with self._lock:
            room = RX_LIMIT - len(self._rx)
            if len(data) > room:
                self.overrun = True
                data = data[:room]
            if self.boot_fail_reply is not None:
                if SOF in data:
                    self._tx += self.boot_fail_reply
                return  # nothing runs to read them
            self._rx.extend(data)

    def host_take(self, limit: int | None = None) -> bytes:
        """Bytes the board has transmitted (at most ``limit``), removed from the line."""
        with self._lock:
            n = len(self._tx) if limit is None else min(limit, len(self._tx))
            out = bytes(self._tx[:n])
            del self._tx[:n]
            return out

    def host_available(self) -> int:
        with self._lock:
            return len(self._tx)

    def emit(self, data: bytes) -> None:
        """Transmit from outside the core (the boot ROM's console output)."""
        with self._lock:
            self._tx += data


_UARTS: weakref.WeakKeyDictionary[Board, Uart0] = weakref.WeakKeyDictionary()


def install(board: Board) -> None:
    """Board extension hook: put UART0 on the bus and reset it with the board."""
    uart = Uart0(board)
    board.add_device(UART0_BASE, UART_BLOCK, uart, "UART0", clock="UART0")
    board.reset_hooks.append(lambda _b: uart.reset())
    _UARTS[board] = uart


def uart_of(board: Board) -> Uart0:
    """The UART0 model of an open board."""
    try:
        return _UARTS[board]
    except KeyError:
        raise RuntimeError(
            f"simulated board {board.name!r} has no UART0 (not opened with Board.open)"
        ) from None


class UartLink:
    """In-process host end of UART0, shaped like a pyserial port (``write``, ``read``,
    ``timeout``, ``reset_input_buffer``, ``close``). It runs the board's core while it waits, so
    the caller must own the board (no other thread may run it meanwhile)."""

    def __init__(self, board: Board, timeout: float = 2.0) -> None:
        self.board = board
        self.uart = uart_of(board)
        self.timeout = timeout
        self.wall_limit = max(10.0, 4 * timeout)  # guards against firmware that never polls
        self.uart.host_take()  # like opening a port: what was sent before nobody heard

    def write(self, data: bytes) -> int:
        self.uart.host_write(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes; fewer when ``timeout`` seconds of idle line time pass first, or at
        once when the core is not running (halted, locked up, refused to boot)."""
        ticks = 0
        max_ticks = max(1, int(self.timeout / IDLE_TICK_S))
        deadline = time.monotonic() + self.wall_limit
        while self.uart.host_available() < size:
            result = self.board.run(RUN_SLICE)
            if result is None or self.board.state is not CoreState.RUNNING:
                break
            if result.reason is StopReason.YIELD:
                ticks += 1
                if ticks >= max_ticks:
                    break
            if time.monotonic() > deadline:
                break
        return self.uart.host_take(size)

    def reset_input_buffer(self) -> None:
        self.uart.host_take()

    def close(self) -> None:
        return None


class UartServer:
    """UART0 on a pseudo-terminal or a TCP loopback socket, served by a thread that owns the
    board's core until ``stop``. ``start`` returns what to open with pyserial."""

    def __init__(self, board: Board, kind: str = "pty", port: int = 0) -> None:
        if kind not in ("pty", "tcp"):
            raise ValueError(f"UART transport must be 'pty' or 'tcp', not {kind!r}")
        self.board = board
        self.uart = uart_of(board)
        self.kind = kind
        self._port = port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: list[int] = []
        self._listener: socket.socket | None = None
        self.address = ""

    def start(self) -> str:
        if self.kind == "pty":
            master, slave = os.openpty()
            tty.setraw(slave)
            self._fds = [master, slave]
            self.address = os.ttyname(slave)
            target = self._serve_pty
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self._port))
            listener.listen(1)
            self._listener = listener
            self.address = f"socket://127.0.0.1:{listener.getsockname()[1]}"
            target = self._serve_tcp
        self._thread = threading.Thread(target=target, name=f"uart-{self.board.name}", daemon=True)
        self._thread.start()
        return self.address

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> UartServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve_pty(self) -> None:
        self._pump(self._fds[0])

    def _serve_tcp(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            conn, _ = self._listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames: no Nagle delay
            with conn:
                self._pump(conn.fileno())

    def _pump(self, fd: int) -> None:
        """Move bytes both ways and run the core; returns on stop or when the peer hangs up."""
        idle = 0
        sent = False
        while not self._stop.is_set():
            running = self.board.state is CoreState.RUNNING
            # Spin in 1 ms ticks while the firmware may be timing a frame; then just wait. A slice
            # that transmitted does not wait: the firmware is sending, not idling.
            wait = 0.0 if sent else IDLE_TICK_S if running and idle < 1000 else 0.05
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if not data:
                    return  # TCP peer closed
                self.uart.host_write(data)
                idle = 0
            if running:
                result = self.board.run(RUN_SLICE)
                if result is not None and result.reason is StopReason.YIELD:
                    idle += 1
                else:
                    idle = 0
            out = self.uart.host_take()
            sent = bool(out)
            if out:
                os.write(fd, out)
