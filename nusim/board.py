"""The simulated board: memories, peripherals, the core and its debug state, wired together.

This is the API the probe plugin, the boot ROM model (``nusim.bootrom``) and the UART model
(``nusim.uart``) build on. Life cycle, as a board on the bench::

    board = Board.open("b1")          # power on: NV state loaded, reset, boot (boot ROM hook)
    board.run(100_000)                # let the core execute (nothing runs behind your back)
    board.read_memory(addr, n)        # bus access as the debugger (Master.DEBUGGER) or CPU
    board.close()                     # power off: NV state saved, file lock released

Extension modules: at power-on, ``Board.open`` imports each module in ``EXTENSIONS`` that
exists and calls its ``install(board: Board) -> None``; that is where the UART device gets
registered with ``add_device`` and the boot ROM with ``board.boot_rom = fn``.

Execution model: the core only advances inside ``run``. The debugger path (``probe_plugin``)
runs the core when the host resumes it and each time it polls DHCSR; a UART server calls
``run`` in slices while it pumps bytes. Peripherals may call ``board.cpu.stop(StopReason.YIELD)``
to give the host a turn (e.g. a read of an empty UART receive register).

Threads: ``Board.lock`` (an ``RLock``) is held by every ``run``, ``reset``, ``halt``/``resume``,
bus access and NV save, so a UART server thread and a pyocd session in the same process take
turns on the core (one run slice or one probe transfer at a time) instead of running it at once.
"""

from __future__ import annotations

import collections
import enum
import fcntl
import hashlib
import importlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from nusim import memmap
from nusim.cpu import Cpu, RunResult, StopReason
from nusim.faults import FaultPlan
from nusim.nvstate import NvState, NvStore, default_sim_dir
from nusim.sau import Attr, Sau, idau

logger = logging.getLogger(__name__)

EXTENSIONS = ("nusim.uart", "nusim.bootrom")
TRACE_LEN = 4096
DEFAULT_INSTRUCTION_BUDGET = 50_000_000  # per debugger resume; stops runaway snippets


class Master(enum.Enum):
    """Who is on the bus: the core, or the debugger through the AHB-AP."""

    CPU = "cpu"
    DEBUGGER = "debugger"


class BusFault(Exception):
    """A bus access that the part would answer with an error (unmapped, protected, locked)."""

    def __init__(self, addr: int, why: str) -> None:
        super().__init__(f"bus fault at 0x{addr:08x}: {why}")
        self.addr = addr


class LinkDown(Exception):
    """The probe link is gone (fault injection or power loss); re-open the board."""


class CoreState(enum.Enum):
    HALTED = "halted"
    RUNNING = "running"
    LOCKUP = "lockup"  # a fault with no handler, or a boot failure: only a reset gets out


class MmioDevice(Protocol):
    """A peripheral block. Offsets are from the block base; ``size`` is 1, 2 or 4 bytes.

    Raise ``BusFault`` to refuse an access. ``master`` lets a device treat the debugger
    differently (e.g. the KeyStore never returns non-readable keys to anyone).
    """

    def read(self, offset: int, size: int, master: Master) -> int: ...

    def write(self, offset: int, size: int, value: int, master: Master) -> None: ...


class WordDevice:
    """Base for peripherals with 32-bit registers: sub-word accesses act on the containing word."""

    def read32(self, offset: int, master: Master) -> int:
        return 0

    def write32(self, offset: int, value: int, master: Master) -> None:
        return None

    def read(self, offset: int, size: int, master: Master) -> int:
        word = self.read32(offset & ~3, master)
        shift = (offset & 3) * 8
        return (word >> shift) & ((1 << (size * 8)) - 1)

    def write(self, offset: int, size: int, value: int, master: Master) -> None:
        if size == 4:
            self.write32(offset & ~3, value & 0xFFFF_FFFF, master)
            return
        shift = (offset & 3) * 8
        mask = ((1 << (size * 8)) - 1) << shift
        old = self.read32(offset & ~3, master)
        self.write32(offset & ~3, (old & ~mask) | ((value << shift) & mask), master)


@dataclass
class _Mapping:
    base: int
    size: int
    device: MmioDevice
    name: str
    clock: str | None = None  # CLK gate (``nusim.clk.GATES``): inert while it is off


class _NonSecureView(WordDevice):
    """The non-secure alias of a Secure-attributed peripheral: RAZ/WI, noted once per reset."""

    def __init__(self, board: Board, name: str) -> None:
        self.board = board
        self.name = name

    def _refused(self, master: Master) -> None:
        if self.name not in self.board.ns_refused:
            self.board.ns_refused.add(self.name)
            self.board.note(
                "attribution", f"{self.name} is Secure: non-secure access by the {master.value} RAZ/WI"
            )

    def read32(self, offset: int, master: Master) -> int:
        self._refused(master)
        return 0

    def write32(self, offset: int, value: int, master: Master) -> None:
        self._refused(master)


class BoardBusy(RuntimeError):
    """Another process has the board open (a pyocd session, a UART server, a provisioning run)."""


def claim_board(directory: Path, name: str) -> IO[str]:
    """Take the board's exclusive file lock (``<dir>/<name>.lock``), as opening a USB probe does;
    raises ``BoardBusy`` at once if another process holds it. Give it back with ``release_board``."""
    directory.mkdir(parents=True, exist_ok=True)
    fh = (directory / f"{name}.lock").open("w", encoding="ascii")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise BoardBusy(f"simulated board {name!r} is in use by another process") from None
    return fh


def release_board(fh: IO[str]) -> None:
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    fh.close()


def board_uid(name: str) -> bytes:
    """The 12-byte UID that FMC READ_UID returns: derived from the board name, stable across runs."""
    return hashlib.sha256(b"nusec-sim-uid:" + name.encode()).digest()[:12]


class Board:
    """One simulated Nu-Link3 (M55S1-like MCU). Exclusive per process (a file lock); inside the
    process, ``lock`` serialises the threads that drive the core (see the module docstring)."""

    def __init__(self, name: str, directory: Path | None = None) -> None:
        """Prefer ``Board.open``. Builds the part without powering it on."""
        from nusim.clk import Clk
        from nusim.crypto import CryptoEngine
        from nusim.debug import CoreDebug
        from nusim.dpm import SCU_PAGE, Dpm
        from nusim.fmc import Fmc
        from nusim.keystore import KeyStore
        from nusim.sysctl import Sys
        from nusim.trng import Trng

        self.name = name
        self.lock = threading.RLock()
        self.directory = directory or default_sim_dir()
        self.store = NvStore(self.directory, name)
        self.uid = board_uid(name)
        self.nv: NvState = NvState()
        self.faults = FaultPlan()
        self.instruction_budget = DEFAULT_INSTRUCTION_BUDGET
        self.link_down = False
        self.power_lost = False
        self.state = CoreState.HALTED
        self.last_stop: RunResult | None = None
        self.boot_rom: Callable[[Board], None] | None = None
        self.reset_hooks: list[Callable[[Board], None]] = []
        self._mappings: list[_Mapping] = []
        self._lock_fh: IO[str] | None = None
        self._flash_dirty = 0
        self._locked_at_reset = False
        self.ns_refused: set[str] = set()  # Secure peripherals touched through their NS alias
        self.attr_seen: set[tuple[str, bool, Attr, Attr, bool]] = set()  # traced once per reset
        self.cpu_seen: set[str] = set()  # blocks the core has touched since reset (traced once)
        self.attr_pages: set[int] = set()  # 4 KiB pages a Secure debugger access has been traced in
        self.access_secure = True  # security of the debugger access in progress (CSW.HNONSEC = 0)
        self.dpm_latched = (False, False)  # (secure world, non-secure world) debug closed since reset
        self.ticks = 0  # modelled time: one tick per peripheral register access, by anyone
        self.trace: collections.deque[tuple[str, str]] = collections.deque(maxlen=TRACE_LEN)

        self.sau = Sau(self.note)
        self.cpu = Cpu()
        self.cpu.map_rom(memmap.FLASH_BASE, memmap.FLASH_SIZE)
        self.cpu.map_ram(memmap.SRAM_BASE, memmap.SRAM_SIZE)
        self.sys = Sys(self.note)
        self.clk = Clk()
        self.fmc = Fmc(self)
        self.keystore = KeyStore(self)
        self.crypto = CryptoEngine(self)
        self.trng = Trng()
        self.debug = CoreDebug(self)
        self.add_device(memmap.SYS_BASE, memmap.PERIPH_BLOCK, self.sys, "SYS")
        self.add_device(SCU_PAGE, memmap.PERIPH_BLOCK, Dpm(self), "DPM", ns_alias=False)
        ns_page = SCU_PAGE + memmap.NS_ALIAS
        self.add_device(ns_page, memmap.PERIPH_BLOCK, Dpm(self, ns_view=True), "DPM_NS", ns_alias=False)
        self.add_device(memmap.CLK_BASE, memmap.PERIPH_BLOCK, self.clk, "CLK")
        self.add_device(memmap.FMC_BASE, memmap.PERIPH_BLOCK, self.fmc, "FMC", clock="ISP0")
        # KS and CRYPTO are attributed Secure: the non-secure world cannot reach them.
        self.add_device(
            memmap.CRYPTO_BASE, memmap.PERIPH_BLOCK, self.crypto, "CRYPTO", clock="CRYPTO0", secure_only=True
        )
        self.add_device(
            memmap.KS_BASE, memmap.PERIPH_BLOCK, self.keystore, "KS", clock="KS0", secure_only=True
        )
        self.add_device(memmap.TRNG_BASE, memmap.PERIPH_BLOCK, self.trng, "TRNG", clock="TRNG0")
        # The core sees its own SCS (VTOR, AIRCR, CPUID...); no NS alias on the PPB.
        self.cpu.map_mmio(memmap.PPB_BASE, memmap.PPB_SIZE, self._cpu_ppb_read, self._cpu_ppb_write)

    # -- life cycle ---------------------------------------------------------------------------
    @classmethod
    def open(cls, name: str, directory: Path | None = None, *, power_on: bool = True) -> Board:
        """Take the board (exclusive, like a USB probe), load its NV state, power it on."""
        board = cls(name, directory)
        board._acquire()
        try:
            board.nv = board.store.load()
            board.faults = FaultPlan.load(board.directory, name)
            budget = os.environ.get("NUSEC_SIM_INSTRUCTION_BUDGET")
            if budget is not None:
                if not budget.isdigit():
                    raise ValueError(f"NUSEC_SIM_INSTRUCTION_BUDGET must be a count, got {budget!r}")
                board.instruction_budget = int(budget)
            if not board.store.exists():
                board.store.save(board.nv)  # a fresh part exists from its first power-on
            board.cpu.write_mem(memmap.FLASH_BASE, bytes(board.nv.flash))
            for modname in EXTENSIONS:
                try:
                    mod = importlib.import_module(modname)
                except ModuleNotFoundError as exc:
                    if exc.name != modname:
                        raise
                    continue
                install = getattr(mod, "install", None)
                if install is not None:
                    install(board)
            if power_on:
                board.reset()
        except BaseException:
            board._release()
            raise
        return board

    def close(self) -> None:
        """Power off: flush NV state and release the board."""
        with self.lock:
            if self._lock_fh is None:
                return
            try:
                if not self.power_lost:
                    self.commit_nv()  # a dropped link is not a power cut: the cells keep what was written
            finally:
                self._release()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _acquire(self) -> None:
        self._lock_fh = claim_board(self.directory, self.name)

    def _release(self) -> None:
        if self._lock_fh is not None:
            release_board(self._lock_fh)
            self._lock_fh = None

    # -- persistence --------------------------------------------------------------------------
    def commit_nv(self) -> None:
        """Write the NV state to its file now (atomic). OTP/config/KS writes call this at once."""
        with self.lock:
            self.store.save(self.nv)
            self._flash_dirty = 0

    def flash_written(self) -> None:
        """Flash programs are batched: saved every 256 programs and at ``commit_nv``/``close``."""
        self._flash_dirty += 1
        if self._flash_dirty >= 256:
            self.commit_nv()

    def power_loss(self) -> None:
        """Cut the power now: save what the NV cells hold, drop the link, stop the core."""
        self.commit_nv()
        self.power_lost = True
        self.link_down = True
        self.state = CoreState.LOCKUP

    # -- devices ------------------------------------------------------------------------------
    def add_device(
        self,
        base: int,
        size: int,
        device: MmioDevice,
        name: str,
        *,
        ns_alias: bool = True,
        clock: str | None = None,
        secure_only: bool = False,
    ) -> None:
        """Put a peripheral on the bus at ``base`` (and ``base + NS_ALIAS``), for CPU and debugger.
        With ``clock`` (a ``nusim.clk.GATES`` name) it is inert while that clock is off. A
        ``secure_only`` peripheral is attributed Secure: its non-secure alias is read-as-zero,
        write-ignored, so the non-secure world never reaches it."""
        bases = [base, base + memmap.NS_ALIAS] if ns_alias else [base]
        for b in bases:
            dev: MmioDevice = device
            if secure_only and b != base:
                dev = _NonSecureView(self, name)
            mapping = _Mapping(b, size, dev, name if b == base else f"{name}_NS", clock)
            self._mappings.append(mapping)

            def rd(addr: int, sz: int, m: _Mapping = mapping) -> int:
                return self._cpu_device_read(m, addr, sz)

            def wr(addr: int, sz: int, value: int, m: _Mapping = mapping) -> None:
                self._cpu_device_write(m, addr, sz, value)

            self.cpu.map_mmio(b, size, rd, wr)

    def _find(self, addr: int) -> _Mapping | None:
        for m in self._mappings:
            if m.base <= addr < m.base + m.size:
                return m
        return None

    def _clocked(self, m: _Mapping) -> bool:
        """Count one tick of modelled time; False when the device's clock is off (inert)."""
        self.ticks += 1
        return m.clock is None or self.clk.enabled(m.clock)

    def _cpu_attribution(self, m: _Mapping, addr: int) -> None:
        """The core runs Secure: its accesses go anywhere; the first per block after a reset is traced."""
        if m.name not in self.cpu_seen:
            self.cpu_seen.add(m.name)
            self.note(
                "attribution", f"cpu Secure access to {m.name} 0x{addr:08x}: {self._attr_text(addr)}, allowed"
            )

    def _cpu_device_read(self, m: _Mapping, addr: int, size: int) -> int:
        self._cpu_attribution(m, addr)
        if not self._clocked(m):
            return 0
        try:
            return m.device.read(addr - m.base, size, Master.CPU)
        except BusFault as exc:
            self.cpu.stop(StopReason.FAULT, str(exc))
            return 0

    def _cpu_device_write(self, m: _Mapping, addr: int, size: int, value: int) -> None:
        self._cpu_attribution(m, addr)
        if not self._clocked(m):
            return
        try:
            m.device.write(addr - m.base, size, value, Master.CPU)
        except BusFault as exc:
            self.cpu.stop(StopReason.FAULT, str(exc))

    def note(self, kind: str, detail: str) -> None:
        """Record a hardware event worth tracing (unlocks, boot stages, attribution); the last
        ``TRACE_LEN`` are kept in ``trace`` and logged at DEBUG."""
        self.trace.append((kind, detail))
        logger.debug("%s: %s %s", self.name, kind, detail)

    def _cpu_ppb_read(self, addr: int, size: int) -> int:
        try:
            return self.debug.read(addr - memmap.PPB_BASE, size, Master.CPU)
        except BusFault as exc:
            self.cpu.stop(StopReason.FAULT, str(exc))
            return 0

    def _cpu_ppb_write(self, addr: int, size: int, value: int) -> None:
        try:
            self.debug.write(addr - memmap.PPB_BASE, size, value, Master.CPU)
        except BusFault as exc:
            self.cpu.stop(StopReason.FAULT, str(exc))

    # -- lock state ---------------------------------------------------------------------------
    def config_word(self, addr: int) -> int:
        off = addr - memmap.CONFIG_BASE
        return int.from_bytes(self.nv.config[off : off + 4], "little")

    @property
    def secure_locked(self) -> bool:
        """Secure-region lock word's low byte is not 0x5A."""
        return (self.config_word(memmap.SCRLOCK_ADDR) & 0xFF) != memmap.UNLOCKED_LOW_BYTE

    @property
    def all_locked(self) -> bool:
        """All-region lock word's low byte is not 0x5A."""
        return (self.config_word(memmap.ARLOCK_ADDR) & 0xFF) != memmap.UNLOCKED_LOW_BYTE

    @property
    def debug_locked(self) -> bool:
        """The debugger has lost access to memory: either lock word was programmed before the last
        reset, or the non-secure DPM debug lock/disable was set before it (``dpm_latched``). As on
        the part, these are latched at reset, so after programming a lock the tool can still read
        ISPFF and verify the word, then resets to apply it."""
        return self._locked_at_reset or self.dpm_latched[1]

    @property
    def secure_debug(self) -> bool:
        """Secure debug is enabled (DHCSR.S_SDE): not closed by the DPM, or DAUTHCTRL's override."""
        return self.debug.secure_debug_allowed()

    # -- bus access ---------------------------------------------------------------------------
    def attribution(self, addr: int) -> Attr:
        """Security attribution of ``addr``: the more secure of the IDAU's and the SAU's answer."""
        return max(idau(addr), self.sau.attribute(addr))

    def _region_name(self, addr: int) -> str:
        phys = addr & ~memmap.NS_ALIAS if memmap.is_non_secure(addr) else addr
        if _inside(phys, 1, memmap.SRAM_BASE, memmap.SRAM_SIZE):
            return "SRAM"
        if _inside(phys, 1, memmap.FLASH_BASE, memmap.FLASH_SIZE):
            return "APROM"
        m = self._find(addr)
        return m.name if m is not None else "unmapped"

    def _check_debugger(self, addr: int, length: int, secure: bool) -> None:
        if self.link_down:
            raise LinkDown(f"simulated board {self.name!r}: probe link is down")
        if memmap.PPB_BASE <= addr < memmap.PPB_BASE + memmap.PPB_SIZE:
            return  # the debug registers stay reachable: pyocd can still connect
        ns_closed = self.dpm_latched[1]
        secure_closed = not self.secure_debug
        if ns_closed:
            raise BusFault(addr, "debug access blocked by the DPM (non-secure debug locked: both worlds)")
        if self._locked_at_reset:
            raise BusFault(addr, "debug access blocked by the secure lock")
        if secure and secure_closed and not memmap.is_non_secure(addr):
            if self.dpm_latched[0]:
                raise BusFault(addr, "debug access blocked by the DPM (secure debug locked)")
            raise BusFault(addr, "debug access blocked: DAUTHCTRL turned secure debug off")
        if secure and not secure_closed:  # a Secure access may go anywhere: only traced
            page = addr >> 12
            if page not in self.attr_pages:  # keeps the per-transfer cost to one set lookup
                self.attr_pages.add(page)
                self._trace_attribution(addr, True, True)
            return
        last = addr + max(length, 1) - 1
        ok = self.attribution(addr) is Attr.NS and self.attribution(last) is Attr.NS
        self._trace_attribution(addr, False, ok)
        if not ok:
            raise BusFault(addr, f"non-secure debugger access to a Secure address ({self._attr_text(addr)})")

    def _attr_text(self, addr: int) -> str:
        i, s = idau(addr), self.sau.attribute(addr)
        return f"IDAU {i.name}, SAU {s.name} -> {max(i, s).name}"

    def _trace_attribution(self, addr: int, secure: bool, ok: bool) -> None:
        region = self._region_name(addr)
        key = (region, secure, idau(addr), self.sau.attribute(addr), ok)
        if key in self.attr_seen:
            return
        self.attr_seen.add(key)
        world = "Secure" if secure else "Non-secure"
        verdict = "allowed" if ok else "fault"
        where = f"{region} 0x{addr:08x}"
        self.note("attribution", f"debugger {world} access to {where}: {self._attr_text(addr)}, {verdict}")

    def read_memory(
        self, addr: int, length: int, master: Master = Master.DEBUGGER, *, secure: bool = True
    ) -> bytes:
        """Read ``length`` bytes as ``master``; MMIO is accessed in naturally aligned words. A
        debugger access is Secure unless ``secure`` is False (the AP's CSW.HNONSEC); the core's
        accesses are always Secure (it runs in Secure state)."""
        with self.lock:
            self.access_secure = secure
            try:
                return self._read_memory(addr, length, master, secure)
            finally:
                self.access_secure = True

    def _read_memory(self, addr: int, length: int, master: Master, secure: bool = True) -> bytes:
        if master is Master.DEBUGGER:
            self._check_debugger(addr, length, secure)
            addr = _memory_alias(addr, length)
        if _inside(addr, length, memmap.SRAM_BASE, memmap.SRAM_SIZE):
            return self.cpu.read_mem(addr, length)
        if _inside(addr, length, memmap.FLASH_BASE, memmap.FLASH_SIZE):
            off = addr - memmap.FLASH_BASE
            return bytes(self.nv.flash[off : off + length])
        out = bytearray()
        a = addr
        while a < addr + length:
            size = 4 if (a % 4 == 0 and addr + length - a >= 4) else 1
            out += self.read_mmio(a, size, master).to_bytes(size, "little")
            a += size
        return bytes(out)

    def write_memory(
        self, addr: int, data: bytes, master: Master = Master.DEBUGGER, *, secure: bool = True
    ) -> None:
        """Write bytes as ``master`` (``secure`` as for ``read_memory``). Flash is not writable
        on the bus: use the FMC."""
        with self.lock:
            self.access_secure = secure
            try:
                self._write_memory(addr, data, master, secure)
            finally:
                self.access_secure = True

    def _write_memory(self, addr: int, data: bytes, master: Master, secure: bool = True) -> None:
        if master is Master.DEBUGGER:
            self._check_debugger(addr, len(data), secure)
            addr = _memory_alias(addr, len(data))
        if _inside(addr, len(data), memmap.SRAM_BASE, memmap.SRAM_SIZE):
            self.cpu.write_mem(addr, data)
            return
        if _inside(addr, len(data), memmap.FLASH_BASE, memmap.FLASH_SIZE):
            raise BusFault(addr, "flash is programmed through the FMC ISP, not by bus writes")
        a = addr
        i = 0
        while i < len(data):
            size = 4 if (a % 4 == 0 and len(data) - i >= 4) else 1
            self.write_mmio(a, size, int.from_bytes(data[i : i + size], "little"), master)
            a += size
            i += size

    def read_mmio(self, addr: int, size: int, master: Master) -> int:
        if memmap.PPB_BASE <= addr < memmap.PPB_BASE + memmap.PPB_SIZE:
            return self.debug.read(addr - memmap.PPB_BASE, size, master)
        m = self._find(addr)
        if m is None:
            raise BusFault(addr, "nothing mapped")
        if not self._clocked(m):
            return 0
        return m.device.read(addr - m.base, size, master)

    def write_mmio(self, addr: int, size: int, value: int, master: Master) -> None:
        if memmap.PPB_BASE <= addr < memmap.PPB_BASE + memmap.PPB_SIZE:
            self.debug.write(addr - memmap.PPB_BASE, size, value, master)
            return
        m = self._find(addr)
        if m is None:
            raise BusFault(addr, "nothing mapped")
        if not self._clocked(m):
            return
        m.device.write(addr - m.base, size, value, master)

    def read32(self, addr: int, master: Master = Master.DEBUGGER) -> int:
        return int.from_bytes(self.read_memory(addr, 4, master), "little")

    def write32(self, addr: int, value: int, master: Master = Master.DEBUGGER) -> None:
        self.write_memory(addr, (value & 0xFFFF_FFFF).to_bytes(4, "little"), master)

    # -- reset and execution ------------------------------------------------------------------
    def reset(self, *, halt: bool = False) -> None:
        """System reset (power-on, AIRCR.SYSRESETREQ, probe nRESET). SRAM keeps its content,
        volatile peripheral state is cleared, then the boot ROM runs. ``halt`` (vector catch)
        leaves the core halted on the first instruction the boot ROM would hand over to."""
        with self.lock:
            self._reset(halt)

    def _reset(self, halt: bool) -> None:
        self._locked_at_reset = self.secure_locked or self.all_locked
        dpm = self.nv.dpm
        self.dpm_latched = (dpm["s_dbgdis"] or dpm["s_lock"], dpm["ns_dbgdis"] or dpm["ns_lock"])
        self.ns_refused.clear()
        self.attr_seen.clear()
        self.cpu_seen.clear()
        self.attr_pages.clear()
        self.sau.reset()
        self.sys.reset()
        self.clk.reset()
        self.fmc.reset()
        self.keystore.reset()
        self.crypto.reset()
        self.debug.reset()
        for hook in self.reset_hooks:
            hook(self)
        self.state = CoreState.RUNNING
        self.last_stop = None
        if self.boot_rom is not None:
            self.boot_rom(self)
        else:
            self.boot_from_flash()
        if halt:
            self.state = CoreState.HALTED  # vector catch (or halted in the ROM after a boot refusal)

    def boot_from_flash(self) -> None:
        """What the part does with no secure boot: MSP and PC from the vector table at the start
        of APROM (VTOR = FLASH_BASE). A blank or nonsensical table locks the core up."""
        sp = int.from_bytes(self.nv.flash[0:4], "little")
        pc = int.from_bytes(self.nv.flash[4:8], "little")
        self.debug.vtor = memmap.FLASH_BASE
        if (
            not (pc & 1)
            or not _inside(pc & ~1, 2, memmap.FLASH_BASE, memmap.FLASH_SIZE)
            or not (memmap.SRAM_BASE < sp <= memmap.SRAM_BASE + memmap.SRAM_SIZE)
        ):
            self.cpu.reset_registers(0, memmap.FLASH_BASE)
            self.enter_lockup("no valid vector table in flash")
            return
        self.cpu.reset_registers(sp, pc & ~1)
        self.state = CoreState.RUNNING

    def enter_lockup(self, why: str) -> None:
        self.state = CoreState.LOCKUP
        self.last_stop = RunResult(StopReason.FAULT, why)

    def halt(self) -> None:
        """Debug halt (C_HALT). A locked-up core halts too, as on the part."""
        with self.lock:
            self.state = CoreState.HALTED

    def resume(self) -> None:
        with self.lock:
            self.state = CoreState.RUNNING

    def run(self, max_instructions: int) -> RunResult | None:
        """Run the core for up to ``max_instructions`` if it is running; None if it was not.

        BKPT and FPB breakpoints halt the core (debug state); faults lock it up.
        """
        with self.lock:
            if self.state is not CoreState.RUNNING or self.link_down:
                return None
            result = self.cpu.run(max_instructions)
            if result.reason in (StopReason.BKPT, StopReason.BREAKPOINT, StopReason.STEP):
                self.state = CoreState.HALTED
            elif result.reason is StopReason.FAULT:
                self.state = CoreState.LOCKUP
            self.last_stop = result
            return result

    @property
    def otp_program_counts(self) -> list[int]:
        """Per OTP entry, the most PROGRAMs any of its words received (persisted; see
        ``NvState.program_counts`` for per-word and lock-word counts)."""
        return self.nv.program_counts.per_entry()


def _memory_alias(addr: int, length: int) -> int:
    """The secure address of flash or SRAM reached through its non-secure alias (same bank); the
    debugger reaches memory through either, the core (always Secure) through the secure one."""
    if memmap.is_non_secure(addr):
        phys = addr - memmap.NS_ALIAS
        if _inside(phys, length, memmap.SRAM_BASE, memmap.SRAM_SIZE) or _inside(
            phys, length, memmap.FLASH_BASE, memmap.FLASH_SIZE
        ):
            return phys
    return addr


def _inside(addr: int, length: int, base: int, size: int) -> bool:
    return base <= addr and addr + length <= base + size
