"""pyocd debug-probe plugin: ``-u sim:<board>`` opens the simulated board ``<board>``.

Entry point ``sim = nusim.probe_plugin:SimProbePlugin`` (group ``pyocd.probe``). The probe is
reached as a CMSIS-DAP probe is: it answers DP and AP register transfers (``nusim.dap``: an
SW-DP and the AHB5-AP), so pyocd's own DP, MEM-AP (CSW/TAR/DRW), CoreSight discovery, target
and core code do every memory access. It advertises what a CMSIS-DAP probe does that it models
(SWJ sequences, banked DP registers), not AP or DPBANKSEL selection: pyocd writes DP SELECT.

Acks map to pyocd's exceptions as its CMSIS-DAP probe maps them: FAULT is
``TransferFaultError``, WAIT past the retries ``TransferTimeoutError``; a dropped link or power
loss is ``ProbeDisconnected``. ``probe.wire`` counts what crossed the wire (``nusim.wire``).

The direct memory interface (``get_memory_interface_for_ap``, as pyocd's ST-Link probe has) is an
explicit option, off by default: session option ``sim.direct_memory``.

For the firmware channel, ``probe.uart_url`` serves the board's UART0 on a loopback TCP socket
(``socket://127.0.0.1:PORT``, opened with pyserial) for as long as the probe is open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pyocd.core import exceptions
from pyocd.core.memory_interface import MemoryInterface
from pyocd.core.options import OptionInfo
from pyocd.core.plugin import Plugin
from pyocd.probe.debug_probe import DebugProbe

from nusim import target
from nusim.board import Board, BusFault, LinkDown
from nusim.dap import CSW_HNONSEC, CSW_SDEVICEEN, Ack, Dap
from nusim.nvstate import default_sim_dir, valid_board_name
from nusim.wire import Wire

if TYPE_CHECKING:
    from pyocd.board.board import Board as PyocdBoard
    from pyocd.coresight.ap import APAddressBase

    from nusim.uart import UartServer

PROBE_PREFIX = "sim"
DIRECT_MEMORY_OPTION = "sim.direct_memory"
__all__ = ["CSW_HNONSEC", "CSW_SDEVICEEN", "SimProbe", "SimProbePlugin"]  # CSW bits: see nusim.dap

T = TypeVar("T")


def _board_call(fn: Callable[[], T]) -> T:
    """Run a board access (not a DP/AP transfer: see ``SimProbe._on_dap``) and translate its
    errors into pyocd's."""
    try:
        return fn()
    except BusFault as exc:
        raise exceptions.TransferFaultError(str(exc), fault_address=exc.addr) from None
    except LinkDown as exc:
        raise exceptions.ProbeDisconnected(str(exc)) from None


class SimMemoryInterface(MemoryInterface):  # type: ignore[misc]
    """AP0's direct memory interface (option ``sim.direct_memory``, off by default): straight
    onto the board's bus as the debugger, bypassing pyocd's MEM-AP code."""

    def __init__(self, probe: SimProbe) -> None:
        self._probe = probe

    def _read(self, addr: int, length: int, attrs: dict[str, Any]) -> bytes:
        secure = _secure(attrs)
        return self._probe.transfer(lambda b: b.read_memory(addr & 0xFFFF_FFFF, length, secure=secure))

    def _write(self, addr: int, data: bytes, attrs: dict[str, Any]) -> None:
        secure = _secure(attrs)
        self._probe.transfer(lambda b: b.write_memory(addr & 0xFFFF_FFFF, data, secure=secure))

    def write_memory(self, addr: int, data: int, transfer_size: int = 32, **attrs: Any) -> None:
        n = transfer_size // 8
        self._write(addr, (data & ((1 << transfer_size) - 1)).to_bytes(n, "little"), attrs)

    def read_memory(
        self, addr: int, transfer_size: int = 32, now: bool = True, **attrs: Any
    ) -> int | Callable[[], int]:
        value = int.from_bytes(self._read(addr, transfer_size // 8, attrs), "little")
        if now:
            return value
        return lambda: value

    def write_memory_block32(self, addr: int, data: Sequence[int], **attrs: Any) -> None:
        self._write(addr, b"".join((w & 0xFFFF_FFFF).to_bytes(4, "little") for w in data), attrs)

    def read_memory_block32(self, addr: int, size: int, **attrs: Any) -> Sequence[int]:
        raw = self._read(addr, size * 4, attrs)
        return [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4)]

    def read_memory_block8(self, addr: int, size: int, **attrs: Any) -> Sequence[int]:
        return list(self._read(addr, size, attrs))

    def write_memory_block8(self, addr: int, data: Sequence[int], **attrs: Any) -> None:
        self._write(addr, bytes(data), attrs)


def _secure(attrs: dict[str, Any]) -> bool:
    """pyocd passes the AP's CSW with every transfer: HNONSEC = 0 is a Secure access."""
    return not int(attrs.get("csw", 0)) & CSW_HNONSEC


class SimProbe(DebugProbe):  # type: ignore[misc]
    """A simulated Nu-Link3 seen as a probe with its target attached."""

    @classmethod
    def get_all_connected_probes(
        cls, unique_id: str | None = None, is_explicit: bool = False
    ) -> list[SimProbe]:
        """Every board with a state file in the simulator directory (plus an explicit new one)."""
        directory = default_sim_dir()
        names = sorted(p.stem for p in directory.glob("*.json") if valid_board_name(p.stem))
        if is_explicit and unique_id and unique_id not in names and valid_board_name(unique_id):
            names.append(unique_id)
        return [cls(n) for n in names]

    @classmethod
    def get_probe_with_id(cls, unique_id: str, is_explicit: bool = False) -> SimProbe | None:
        """``sim:<board>`` always answers (a never-powered board is factory blank)."""
        name = unique_id.split(":", 1)[1] if unique_id.lower().startswith("sim:") else unique_id
        if not valid_board_name(name):
            return None
        if is_explicit or (default_sim_dir() / f"{name}.json").is_file():
            return cls(name)
        return None

    def __init__(self, board_name: str) -> None:
        super().__init__()
        self.board_name = board_name
        self.board: Board | None = None
        self._connected = False
        self._reset_asserted = False
        self.wire = Wire()  # what crossed the wire (docs/sim-board.md, "Wire accounting")
        self.dap: Dap | None = None
        self._mem = SimMemoryInterface(self)
        self._access = threading.RLock()
        self._uart: UartServer | None = None

    # -- description --------------------------------------------------------------------------
    @property
    def vendor_name(self) -> str:
        return "NuSec"

    @property
    def product_name(self) -> str:
        return "Simulated Nu-Link3"

    @property
    def supported_wire_protocols(self) -> list[DebugProbe.Protocol]:
        return [DebugProbe.Protocol.DEFAULT, DebugProbe.Protocol.SWD]

    @property
    def unique_id(self) -> str:
        return f"{PROBE_PREFIX}:{self.board_name}"

    @property
    def wire_protocol(self) -> DebugProbe.Protocol | None:
        return DebugProbe.Protocol.SWD if self._connected else None

    @property
    def is_open(self) -> bool:
        return self.board is not None

    @property
    def capabilities(self) -> set[DebugProbe.Capability]:
        """What a CMSIS-DAP probe offers that is modelled; pyocd selects APs and DP banks itself."""
        return {DebugProbe.Capability.SWJ_SEQUENCE, DebugProbe.Capability.BANKED_DP_REGISTERS}

    def create_associated_board(self) -> PyocdBoard | None:
        """Select our target type unless the user asked for another one."""
        from pyocd.board.board import Board as PyocdBoard

        session = self.session
        assert session is not None
        if session.options.is_set("target_override"):
            return None
        return PyocdBoard(session, target=target.TARGET_NAME)

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            self.board = Board.open(self.board_name)
        except (RuntimeError, ValueError) as exc:
            raise exceptions.ProbeError(str(exc)) from exc
        self.dap = Dap(self.board, self.wire)

    def close(self) -> None:
        with self._access:
            if self._uart is not None:
                self._uart.stop()
                self._uart = None
            if self.board is not None:
                self.board.close()
                self.board = None
                self.dap = None

    def connect(self, protocol: DebugProbe.Protocol | None = None) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def set_clock(self, frequency: float) -> None:
        self.wire.swclk_hz = float(frequency)

    def swj_sequence(self, length: int, bits: int) -> None:
        self.wire.sequence(length)

    def reset(self) -> None:
        self.transfer(lambda b: b.debug.system_reset())

    def assert_reset(self, asserted: bool) -> None:
        if self._reset_asserted and not asserted:
            self.transfer(lambda b: b.debug.system_reset())
        self._reset_asserted = asserted

    def is_reset_asserted(self) -> bool:
        return self._reset_asserted

    def flush(self) -> None:
        return None

    @property
    def uart_url(self) -> str:
        """The board's UART0 as a pyserial URL (``socket://127.0.0.1:PORT``), served by a thread
        of this process from the first call until the probe closes. A real probe's VCOM port is
        a serial device the same way; the desktop opens it with pyserial and nothing else."""
        from nusim.uart import UartServer, uart_of

        with self._access:
            if self.board is None:
                raise exceptions.ProbeError("simulated probe is not open")
            if self._uart is None:
                with self.board.lock:
                    uart_of(self.board).host_take()  # what was sent before the port opened is lost
                server = UartServer(self.board, kind="tcp")
                server.start()
                self._uart = server
            return self._uart.address

    # -- transfers ----------------------------------------------------------------------------
    def transfer(self, fn: Callable[[Board], T]) -> T:
        """One probe transfer: counted for fault injection, errors mapped to pyocd's. It holds
        the board's lock, so a UART server thread on the same board waits between run slices."""
        with self._access:
            board = self._live_board()
            with board.lock:
                self._count(board)
                return _board_call(lambda: fn(board))

    def _live_board(self) -> Board:
        board = self.board
        if board is None:
            raise exceptions.ProbeError("simulated probe is not open")
        return board

    def _count(self, board: Board) -> None:
        if board.faults.count_transfer():
            board.link_down = True
        if board.link_down:
            raise exceptions.ProbeDisconnected(f"simulated board {board.name!r}: probe link is down")

    def _on_dap(self, op: Callable[[Dap], T]) -> T:
        """A DP/AP transfer (the hot path of every memory access: kept to one call deep)."""
        with self._access:
            board = self._live_board()
            dap = self.dap
            assert dap is not None
            with board.lock:
                self._count(board)
                try:
                    return op(dap)
                except Ack as ack:
                    if ack.kind == "WAIT":
                        raise exceptions.TransferTimeoutError(str(ack)) from None
                    raise exceptions.TransferFaultError(str(ack), fault_address=ack.addr) from None
                except LinkDown as exc:
                    raise exceptions.ProbeDisconnected(str(exc)) from None

    def read_dp(self, addr: int, now: bool = True) -> int | Callable[[], int]:
        value = self._on_dap(lambda d: d.read_dp(addr))
        return value if now else (lambda: value)

    def write_dp(self, addr: int, data: int) -> None:
        self._on_dap(lambda d: d.write_dp(addr, data))

    def read_ap(self, addr: int, now: bool = True) -> int | Callable[[], int]:
        value = self._on_dap(lambda d: d.read_ap(addr))
        return value if now else (lambda: value)

    def write_ap(self, addr: int, data: int) -> None:
        self._on_dap(lambda d: d.write_ap(addr, data))

    def read_ap_multiple(self, addr: int, count: int = 1, now: bool = True) -> Any:
        values = self._on_dap(lambda d: d.read_ap_multiple(addr, count))
        return values if now else (lambda: values)

    def write_ap_multiple(self, addr: int, values: Sequence[int]) -> None:
        self._on_dap(lambda d: d.write_ap_multiple(addr, values))

    def get_memory_interface_for_ap(self, ap_address: APAddressBase) -> MemoryInterface | None:
        """None (pyocd's MEM-AP code runs) unless the session option ``sim.direct_memory`` is on."""
        session = self.session
        if session is None or not session.options.get(DIRECT_MEMORY_OPTION):
            return None
        if getattr(ap_address, "apsel", None) != 0:
            return None
        return self._mem


class SimProbePlugin(Plugin):  # type: ignore[misc]
    """Plugin entry: loads the probe class and registers the target type."""

    def should_load(self) -> bool:
        return True

    def load(self) -> type[SimProbe]:
        target.register()
        return SimProbe

    @property
    def name(self) -> str:
        return PROBE_PREFIX

    @property
    def description(self) -> str:
        return "NuSec simulated Nu-Link3 (boards in $NUSEC_SIM_DIR)"

    @property
    def options(self) -> list[OptionInfo]:
        return [
            OptionInfo(
                DIRECT_MEMORY_OPTION,
                bool,
                False,
                "Hand pyocd a direct memory interface on AP0 (bypasses pyocd's MEM-AP code). Off by default.",
            )
        ]
