"""pyocd debug-probe plugin: ``-u sim:<board>`` opens the simulated board ``<board>``.

Entry point ``sim = nusim.probe_plugin:SimProbePlugin`` (group ``pyocd.probe``). The probe
serves the DP and AP registers pyocd reads during discovery, and hands pyocd a memory interface
on AP0 (like the ST-Link probe), so every byte the tool moves goes through pyocd's own target,
core and memory code. Board errors map to pyocd's exceptions: a bus fault (e.g. after the secure
lock) is a ``TransferFaultError``; a dropped link or power loss is ``ProbeDisconnected``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pyocd.core import exceptions
from pyocd.core.memory_interface import MemoryInterface
from pyocd.core.plugin import Plugin
from pyocd.probe.debug_probe import DebugProbe

from nusim import target
from nusim.board import Board, BusFault, LinkDown
from nusim.nvstate import default_sim_dir, valid_board_name
from nusim.wire import Wire

if TYPE_CHECKING:
    from pyocd.board.board import Board as PyocdBoard
    from pyocd.coresight.ap import APAddressBase

PROBE_PREFIX = "sim"
DP_IDR, DP_CTRL_STAT, DP_SELECT, DP_RDBUFF = 0x0, 0x4, 0x8, 0xC
DPIDR_VALUE = 0x2BA0_1477  # DPv2, ARM designer, as on v8-M parts
AP_CSW, AP_CFG, AP_BASE, AP_IDR = 0x00, 0xF4, 0xF8, 0xFC
# AHB5-AP: revision 0, designer ARM (0x23b), class MEM-AP (8), variant 1, type AHB5 (5).
AHB5_AP_IDR = (0x23B << 17) | (8 << 13) | (1 << 4) | 0x5
CSYSPWRUPREQ, CDBGPWRUPREQ = 1 << 30, 1 << 28
CSW_HNONSEC, CSW_SDEVICEEN = 1 << 30, 1 << 23  # AHB-AP CSW (pyocd coresight/ap.py; ADIv5)

T = TypeVar("T")


def _board_call(fn: Callable[[], T]) -> T:
    """Run a board access and translate its errors into pyocd's."""
    try:
        return fn()
    except BusFault as exc:
        raise exceptions.TransferFaultError(str(exc), fault_address=exc.addr) from None
    except LinkDown as exc:
        raise exceptions.ProbeDisconnected(str(exc)) from None


class SimMemoryInterface(MemoryInterface):  # type: ignore[misc]
    """AP0's memory interface: straight onto the board's bus as the debugger."""

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
        self._ctrl_stat = 0
        self._ap_csw = 0x2300_0052
        self._mem = SimMemoryInterface(self)
        self._access = threading.RLock()
        self.wire = Wire()  # what crossed the wire (docs/sim-board.md, "Wire accounting")

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
        return {
            DebugProbe.Capability.MANAGED_AP_SELECTION,
            DebugProbe.Capability.MANAGED_DPBANKSEL,
            DebugProbe.Capability.BANKED_DP_REGISTERS,
        }

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

    def close(self) -> None:
        with self._access:
            if self.board is not None:
                self.board.close()
                self.board = None

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

    # -- transfers ----------------------------------------------------------------------------
    def transfer(self, fn: Callable[[Board], T]) -> T:
        """One probe transfer: counted for fault injection, errors mapped to pyocd's. It holds
        the board's lock, so a UART server thread on the same board waits between run slices."""
        with self._access:
            board = self.board
            if board is None:
                raise exceptions.ProbeError("simulated probe is not open")
            with board.lock:
                if board.faults.count_transfer():
                    board.link_down = True
                return _board_call(lambda: fn(board))

    def _link_check(self, board: Board) -> None:
        if board.link_down:
            raise LinkDown(f"simulated board {board.name!r}: probe link is down")

    def read_dp(self, addr: int, now: bool = True) -> int | Callable[[], int]:
        def rd(board: Board) -> int:
            self._link_check(board)
            if addr == DP_IDR:
                return DPIDR_VALUE
            if addr == DP_CTRL_STAT:
                acks = (self._ctrl_stat & (CSYSPWRUPREQ | CDBGPWRUPREQ)) << 1
                return self._ctrl_stat | acks
            return 0

        value = self.transfer(rd)
        self.wire.single("R DP")
        return value if now else (lambda: value)

    def write_dp(self, addr: int, data: int) -> None:
        def wr(board: Board) -> None:
            self._link_check(board)
            if addr == DP_CTRL_STAT:
                self._ctrl_stat = data & 0xF000_0F00

        self.transfer(wr)
        self.wire.single("W DP")

    def read_ap(self, addr: int, now: bool = True) -> int | Callable[[], int]:
        def rd(board: Board) -> int:
            self._link_check(board)
            apsel, reg = (addr >> 24) & 0xFF, addr & 0xFF
            if apsel != 0:
                return 0
            csw = self._ap_csw | (CSW_SDEVICEEN if board.secure_debug else 0)  # SPIDEN, as the DPM leaves it
            return {AP_IDR: AHB5_AP_IDR, AP_BASE: 0xE00F_F003, AP_CFG: 0, AP_CSW: csw}.get(reg, 0)

        value = self.transfer(rd)
        self.wire.single("R AP", posted_read=True)
        return value if now else (lambda: value)

    def write_ap(self, addr: int, data: int) -> None:
        def wr(board: Board) -> None:
            self._link_check(board)
            if (addr >> 24) & 0xFF == 0 and addr & 0xFF == AP_CSW:
                self._ap_csw = data & ~CSW_SDEVICEEN  # read-only: the authentication signal

        self.transfer(wr)
        self.wire.single("W DP")

    def read_ap_multiple(self, addr: int, count: int = 1, now: bool = True) -> Any:
        values = [self.read_ap(addr, now=True) for _ in range(count)]
        return values if now else (lambda: values)

    def write_ap_multiple(self, addr: int, values: Sequence[int]) -> None:
        for v in values:
            self.write_ap(addr, v)

    def get_memory_interface_for_ap(self, ap_address: APAddressBase) -> MemoryInterface | None:
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
