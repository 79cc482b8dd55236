"""The desktop's two links to one board: the debugger (pyocd, SWD) and, after the lock, the board
firmware's command channel (UART).

The debugger goes through pyocd with the probe's unique id: ``sim:b1`` reaches the simulated
board through its pyocd probe-plugin entry point, and pyocd's MEM-AP code does every access, as
with a CMSIS-DAP probe on silicon. The firmware channel is a serial port opened with pyserial: a
real board's, or the loopback URL a simulated board's probe reports; nothing here imports the
simulator. ``CountingMemory`` wraps the pyocd target to count the data bytes the flow moves, per
step, for the progress display; what crossed the wire is the probe's to count.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from nusec.provision.ecdh import BoardHalf
from nusec.provision.errors import BoardUnreachable
from nusec.provision.otp_writer import FmcIsp

if TYPE_CHECKING:
    from pyocd.core.session import Session


class BoardChannel(Protocol):
    """What the flow needs from the board firmware's UART channel (``nusec.board.channel``)."""

    def uid(self) -> bytes: ...

    def version(self) -> str: ...

    def ecdh_begin(self) -> BoardHalf: ...

    def ecdh_finish(self, srv_eph: bytes, srv_sig: bytes, kc_server: bytes) -> bytes: ...


class CountingMemory:
    """A pyocd target's memory interface that counts bytes over the probe (not thread-shared)."""

    def __init__(self, target: Any) -> None:
        self._t = target
        self.bytes = 0

    def read32(self, addr: int) -> int:
        v = int(self._t.read32(addr))
        self.bytes += 4
        return v

    def write32(self, addr: int, value: int) -> None:
        self._t.write32(addr, value)
        self.bytes += 4

    def read_memory_block8(self, addr: int, size: int) -> list[int]:
        data = [int(b) for b in self._t.read_memory_block8(addr, size)]
        self.bytes += size
        return data

    def write_memory_block8(self, addr: int, data: list[int] | bytes) -> None:
        self._t.write_memory_block8(addr, list(data))
        self.bytes += len(data)

    @property
    def target(self) -> Any:
        return self._t


_TRANSFER_ERRORS: tuple[type[BaseException], ...] = ()


def fault_errors() -> tuple[type[BaseException], ...]:
    """Exceptions for a transfer the target answered with a fault (e.g. refused by the lock),
    as opposed to a link that is gone."""
    from pyocd.core import exceptions as pe

    return (pe.TransferFaultError,)


def transfer_errors() -> tuple[type[BaseException], ...]:
    """Exceptions pyocd raises when a transfer fails (link drop, fault, lock)."""
    global _TRANSFER_ERRORS
    if not _TRANSFER_ERRORS:
        from pyocd.core import exceptions as pe

        _TRANSFER_ERRORS = (pe.TransferError, pe.ProbeError, pe.ProbeDisconnected, pe.Error)
    return _TRANSFER_ERRORS


@contextlib.contextmanager
def board_errors(what: str) -> Iterator[None]:
    """Turn pyocd transfer failures into ``BoardUnreachable`` naming what was being done."""
    try:
        yield
    except transfer_errors() as exc:
        raise BoardUnreachable(f"probe link failed while {what}: {type(exc).__name__}: {exc}") from None


_OPEN_MU = threading.Lock()
SRAM_BASE = 0x2000_0000
CPUID_ADDR = 0xE000_ED00


SIM_PREFIX = "sim:"


def normalise_probe_id(probe_id: str) -> str:
    """The id as compared: exact, except that the ``sim:`` prefix is case-insensitive."""
    pid = probe_id.strip()
    if pid[: len(SIM_PREFIX)].lower() == SIM_PREFIX:
        return SIM_PREFIX + pid[len(SIM_PREFIX) :]
    return pid


def find_probe(probe_id: str) -> Any:
    """The one connected pyocd probe whose unique id is exactly ``probe_id`` (normalised).

    pyocd itself matches a unique id as a case-insensitive substring (``e7-b`` would open
    ``sim:line7-board``); a provisioning tool must never reach a board by a near miss."""
    from pyocd.probe.aggregator import DebugProbeAggregator

    want = normalise_probe_id(probe_id)
    if not want:
        raise BoardUnreachable("an empty --probe id matches no probe")
    with board_errors(f"looking for probe {want}"):
        try:
            probes = DebugProbeAggregator.get_all_connected_probes(unique_id=want)
        except Exception as exc:  # pyocd: unknown probe type prefix, USB errors
            if isinstance(exc, transfer_errors()):
                raise
            raise BoardUnreachable(f"no probe with unique id {want!r}: {exc}") from None
    exact = [p for p in probes if normalise_probe_id(str(p.unique_id)) == want]
    if len(exact) != 1:
        near = sorted(str(p.unique_id) for p in probes)
        hint = f" (near misses, not used: {', '.join(near)})" if near else ""
        raise BoardUnreachable(f"no probe with unique id {want!r}; ids must match exactly{hint}")
    return exact[0]


class SwdLink:
    """A pyocd session on one probe. ``open`` connects; ``close`` always disconnects."""

    def __init__(self, probe_id: str) -> None:
        self.probe_id = normalise_probe_id(probe_id)
        self.session: Session | None = None
        self.mem: CountingMemory | None = None

    def open(self) -> SwdLink:
        from pyocd.core.session import Session

        with board_errors(f"connecting to probe {self.probe_id}"), _OPEN_MU:
            probe = find_probe(self.probe_id)
            session = Session(probe, options={"connect_mode": "attach", "resume_on_disconnect": False})
            session.open()
        self.session = session
        self.mem = CountingMemory(session.target)
        return self

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.close()
            self.session = None

    def __enter__(self) -> SwdLink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def memory(self) -> CountingMemory:
        if self.mem is None:
            raise BoardUnreachable("probe session is not open")
        return self.mem

    @property
    def target(self) -> Any:
        return self.memory.target

    def isp(self) -> FmcIsp:
        return FmcIsp(self.memory)

    def debugger_has_access(self, addr: int = SRAM_BASE) -> bool:
        """True if a bus read through the debugger works; False if the target refuses it while
        the link itself is alive (the lock); ``BoardUnreachable`` if the link is gone."""
        try:
            self.memory.read32(addr)
            return True
        except fault_errors():
            pass
        except transfer_errors() as exc:
            raise BoardUnreachable(f"probe link failed: {type(exc).__name__}: {exc}") from None
        with board_errors("checking the link after a refused read"):
            self.memory.read32(CPUID_ADDR)  # the debug port still answers on a locked part
        return False

    def hardware_reset(self) -> None:
        """Reset through the probe's nRESET line (debug-register resets are ignored after the lock)."""
        from pyocd.core.target import Target

        assert self.session is not None
        with board_errors("resetting the board"):
            self.target.reset(Target.ResetType.HARDWARE)


class FirmwareChannel:
    """``nusec.board.channel.BoardChannel`` seen through the flow's ``BoardChannel`` protocol, with
    its errors turned into provisioning errors (a board that refuses to boot stops the run)."""

    def __init__(self, channel: Any) -> None:
        self._ch = channel

    def _call(self, what: str, fn: Any) -> Any:
        from nusec.board.channel import BoardBootFailed, BoardError, ChannelError

        try:
            return fn()
        except BoardBootFailed as exc:
            raise BoardUnreachable(f"board refused to boot its firmware: {exc}") from None
        except BoardError as exc:
            from nusec.provision.errors import VerificationError

            raise VerificationError(f"board refused {what}: {exc}") from None
        except (ChannelError, OSError) as exc:
            raise BoardUnreachable(f"board UART channel failed during {what}: {exc}") from None

    def uid(self) -> bytes:
        return bytes(self._call("UID", self._ch.uid))

    def version(self) -> str:
        info = self._call("VERSION", self._ch.version)
        return f"{info.name} {'.'.join(str(v) for v in info.version)} (protocol {info.protocol})"

    def ecdh_begin(self) -> BoardHalf:
        offer = self._call("ECDH_BEGIN", self._ch.ecdh_begin)
        return BoardHalf(bytes(offer.board_eph), bytes(offer.board_sig))

    def ecdh_finish(self, srv_eph: bytes, srv_sig: bytes, kc_server: bytes) -> bytes:
        return bytes(self._call("ECDH_FINISH", lambda: self._ch.ecdh_finish(srv_eph, srv_sig, kc_server)))


def open_channel(link: SwdLink, probe_id: str, uart_port: str | None = None) -> FirmwareChannel:
    """The firmware channel of the board behind ``probe_id``: the serial port/URL given, else,
    for a simulated board, the pyserial URL its probe reports (``probe.uart_url``: the simulator
    serves UART0 on a loopback socket). Either way it is a serial port opened with pyserial."""
    from nusec.board.channel import BoardChannel as _Channel
    from nusec.board.channel import ChannelError

    if not uart_port:
        if not normalise_probe_id(probe_id).startswith(SIM_PREFIX):
            from nusec.provision.errors import UsageError

            raise UsageError(f"--uart {probe_id}=PORT is needed to reach the firmware of a real board")
        probe = link.session.probe if link.session is not None else None
        if probe is None:
            raise BoardUnreachable(f"simulated board behind {probe_id} is not open")
        with board_errors(f"asking probe {probe_id} for its UART"):
            uart_port = str(probe.uart_url)
    try:
        return FirmwareChannel(_Channel.open(uart_port))
    except ChannelError as exc:
        raise BoardUnreachable(f"board UART channel failed to open: {exc}") from None
