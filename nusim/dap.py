"""The board's debug access port as an SWD probe reaches it: an ADIv5 SW-DP (DPv2) and one
AHB5-AP (a MEM-AP) on the system bus, with the register semantics pyocd's DP and MEM-AP code
relies on (``pyocd/coresight/dap.py``, ``ap.py``).

- DP: ``DPIDR``/``ABORT`` (0x0), ``CTRL/STAT`` and its banks (0x4; DPBANKSEL in SELECT),
  ``SELECT``/``RESEND`` (0x8), ``RDBUFF`` (0xC). The power-up requests are acknowledged at once.
- AP registers are addressed as on the wire: APSEL and APBANKSEL come from ``SELECT``, A[3:2]
  from the request. AP0 is the AHB5-AP: ``CSW`` (Size 8/16/32, AddrInc off/single, HNONSEC, Prot,
  MasterType writable; DeviceEn and SDeviceEn read-only), ``TAR``, ``DRW``, ``BD0``-``BD3``,
  ``CFG``, ``BASE`` (the ROM table at 0xE00FF000) and ``IDR``. Other APSELs read IDR 0.
- ``DRW`` moves ``CSW.Size`` bytes at ``TAR`` on the byte lanes ADIv5 gives them (a byte at
  TAR[1:0] travels in bits 8*TAR[1:0]...), then with AddrInc single adds the size to TAR. ADIv5
  guarantees the increment only for TAR[9:0]; this AP wraps there, as many do: the address
  stays inside its 1 KiB block (pyocd never lets a block cross one).
- A bus error (the lock, the DPM, a Non-secure access to a Secure address, nothing mapped) sets
  ``CTRL/STAT.STICKYERR`` and the transfer answers FAULT; while a sticky flag is set, every
  access but a DPIDR or CTRL/STAT read and an ABORT write answers FAULT, until ``ABORT.STKERRCLR``.
- WAIT: ``stall(n)`` makes the next AP accesses answer WAIT ``n`` times (the AHB not ready). The
  probe retries a WAIT up to ``WAIT_RETRY`` times, as pyocd configures a CMSIS-DAP probe; past
  that the transfer fails with WAIT (pyocd's ``TransferTimeoutError``) and ``ABORT.DAPABORT``
  cancels the stalled access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nusim import memmap
from nusim.board import BusFault
from nusim.wire import Wire

if TYPE_CHECKING:
    from nusim.board import Board

# DP registers (A[3:2]) and their fields (ADIv5.2 B2.2).
DP_IDR_ABORT, DP_CTRL_STAT, DP_SELECT_RESEND, DP_RDBUFF = 0x0, 0x4, 0x8, 0xC
DPIDR_VALUE = 0x2BA0_1477  # DPv2, designer ARM, as on v8-M parts
TARGETID_VALUE = 0x0000_0001  # TDESIGNER and TPARTNO not modelled (0); bit 0 reads 1
DLPIDR_VALUE = 0x0000_0001  # protocol version 1, single-drop
ABORT_DAPABORT, ABORT_STKCMPCLR, ABORT_STKERRCLR, ABORT_WDERRCLR, ABORT_ORUNERRCLR = 1, 2, 4, 8, 16
STICKYORUN, STICKYCMP, STICKYERR, WDATAERR = 1 << 1, 1 << 4, 1 << 5, 1 << 7
STICKY = STICKYORUN | STICKYCMP | STICKYERR | WDATAERR
CDBGPWRUPREQ, CDBGPWRUPACK, CSYSPWRUPREQ, CSYSPWRUPACK = 1 << 28, 1 << 29, 1 << 30, 1 << 31
CTRL_WRITABLE = 0x5000_0F01  # power requests, CDBGRSTREQ (b26 not modelled), MASKLANE, ORUNDETECT
DP_NAMES = {
    (DP_IDR_ABORT, False): "R DP.IDR",
    (DP_IDR_ABORT, True): "W DP.ABORT",
    (DP_CTRL_STAT, False): "R DP.CTRL/STAT",
    (DP_CTRL_STAT, True): "W DP.CTRL/STAT",
    (DP_SELECT_RESEND, False): "R DP.RESEND",
    (DP_SELECT_RESEND, True): "W DP.SELECT",
    (DP_RDBUFF, False): "R DP.RDBUFF",
    (DP_RDBUFF, True): "W DP.RDBUFF",
}

# MEM-AP registers (ADIv5.2 C2.6) and the AHB5-AP CSW.
CSW, TAR, DRW, BD0, BD3, CFG, BASE, IDR = 0x00, 0x04, 0x0C, 0x10, 0x1C, 0xF4, 0xF8, 0xFC
AP_NAMES = {CSW: "CSW", TAR: "TAR", DRW: "DRW", CFG: "CFG", BASE: "BASE", IDR: "IDR"}
AP_NAMES.update({BD0 + 4 * i: f"BD{i}" for i in range(4)})
# AHB5-AP: revision 0, designer ARM (0x23b), class MEM-AP (8), variant 1, type AHB5 (5).
AHB5_AP_IDR = (0x23B << 17) | (8 << 13) | (1 << 4) | 0x5
ROM_BASE_VALUE = memmap.ROM_TABLE_BASE | 0x3  # ADIv5 format, entry present
CSW_SIZE = 0x7
CSW_ADDRINC, ADDRINC_OFF, ADDRINC_SINGLE = 0x30, 0x00, 0x10
CSW_DEVICEEN, CSW_TRINPROG = 1 << 6, 1 << 7
CSW_SDEVICEEN = 1 << 23  # secure debug enabled (SPIDEN), read-only
CSW_PROT, CSW_MSTRTYPE, CSW_HNONSEC = 0x1F00_8000, 1 << 29, 1 << 30  # HPROT[4:0] b28:24, HPROT[6] b15
CSW_WRITABLE = CSW_SIZE | CSW_ADDRINC | CSW_PROT | CSW_MSTRTYPE | CSW_HNONSEC
CSW_RESET = 0x2300_0052 & ~CSW_SDEVICEEN  # MasterType debug, HPROT data+privileged, AddrInc single, 32-bit
SIZES = {0: 1, 1: 2, 2: 4}  # CSW.Size -> bytes (8/16/32-bit; no Large Data extension)
WAIT_RETRY = 150  # pyocd: CMSISDAPProtocol.transfer_configure(wait_retry=150)
TAR_WRAP = 0x400  # the auto-increment boundary (ADIv5: TAR[9:0])


class Ack(Exception):
    """A non-OK SWD acknowledge: ``FAULT`` or ``WAIT`` (``why`` says what caused it)."""

    def __init__(self, kind: str, why: str, addr: int | None = None) -> None:
        super().__init__(f"{kind} ack: {why}")
        self.kind = kind
        self.why = why
        self.addr = addr


def _plain_memory(addr: int, length: int) -> bool:
    """SRAM or flash (either alias): a block there is one bus access, with no side effects."""
    phys = addr - memmap.NS_ALIAS if memmap.is_non_secure(addr) else addr
    for base, size in ((memmap.SRAM_BASE, memmap.SRAM_SIZE), (memmap.FLASH_BASE, memmap.FLASH_SIZE)):
        if base <= phys and phys + length <= base + size:
            return True
    return False


class Dap:
    """DP and AP0 state of one board's debug port, driven by the probe one transfer at a time.
    Every method runs with the board's lock held (the probe takes it)."""

    def __init__(self, board: Board, wire: Wire) -> None:
        self.board = board
        self.wire = wire
        self.ctrl_stat = 0
        self.select = 0
        self.rdbuff = 0
        self.csw = CSW_RESET
        self.tar = 0
        self._stall = 0
        self.stalled = False  # an access gave up on WAIT; DAPABORT clears it
        self._names: dict[tuple[str, int, int], str] = {}

    # -- the wire -----------------------------------------------------------------------------
    def stall(self, count: int) -> None:
        """Answer WAIT to the next ``count`` AP access attempts (the AHB-AP not ready)."""
        self._stall = count

    def _ap_ready(self) -> None:
        """The WAIT handshake of one AP access: retried by the probe up to ``WAIT_RETRY`` times."""
        if self._stall <= 0 and not self.stalled:
            return
        if self.stalled:
            self.wire.wait(1)
            raise Ack("WAIT", "AP access still stalled (write ABORT.DAPABORT)")
        waits = min(self._stall, WAIT_RETRY + 1)
        self._stall -= waits
        self.wire.wait(waits)
        if waits > WAIT_RETRY:
            self.stalled = True
            raise Ack("WAIT", f"AP did not become ready within {WAIT_RETRY} retries")

    def _check_sticky(self, what: str) -> None:
        if self.ctrl_stat & STICKY:
            self.wire.faults += 1
            raise Ack("FAULT", f"{what} refused: CTRL/STAT sticky error set (clear it through ABORT)")

    # -- DP -----------------------------------------------------------------------------------
    def read_dp(self, addr: int) -> int:
        reg = addr & 0xC
        self.wire.single(DP_NAMES[(reg, False)])
        if reg == DP_IDR_ABORT:
            return DPIDR_VALUE
        if reg == DP_CTRL_STAT:
            return self._read_ctrl_bank()
        self._check_sticky("DP read")
        if reg == DP_SELECT_RESEND:
            return self.rdbuff
        return self.rdbuff  # RDBUFF: the last AP read's data

    def _read_ctrl_bank(self) -> int:
        bank = self.select & 0xF
        if bank == 0:
            acks = (self.ctrl_stat & (CSYSPWRUPREQ | CDBGPWRUPREQ)) << 1
            return self.ctrl_stat | acks
        return {2: TARGETID_VALUE, 3: DLPIDR_VALUE}.get(bank, 0)  # DLCR 1 and EVENTSTAT 4 read 0

    def write_dp(self, addr: int, data: int) -> None:
        reg = addr & 0xC
        self.wire.single(DP_NAMES[(reg, True)])
        if reg == DP_IDR_ABORT:
            self._abort(data)
            return
        self._check_sticky("DP write")
        if reg == DP_CTRL_STAT and self.select & 0xF == 0:
            self.ctrl_stat = (self.ctrl_stat & STICKY) | (data & CTRL_WRITABLE)
        elif reg == DP_SELECT_RESEND:
            self.select = data & 0xFF00_00FF

    def _abort(self, data: int) -> None:
        if data & ABORT_DAPABORT:
            self._stall = 0
            self.stalled = False
        if data & ABORT_STKERRCLR:
            self.ctrl_stat &= ~STICKYERR
        if data & ABORT_STKCMPCLR:
            self.ctrl_stat &= ~STICKYCMP
        if data & ABORT_WDERRCLR:
            self.ctrl_stat &= ~WDATAERR
        if data & ABORT_ORUNERRCLR:
            self.ctrl_stat &= ~STICKYORUN

    # -- AP -----------------------------------------------------------------------------------
    def _ap_reg(self, addr: int) -> tuple[int, int]:
        """(APSEL, register offset) of an AP access: SELECT gives APSEL and the bank."""
        return self.select >> 24, (self.select & 0xF0) | (addr & 0xC)

    def _ap_name(self, rw: str, apsel: int, reg: int) -> str:
        key = (rw, apsel, reg)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"{rw} AP{apsel}.{AP_NAMES.get(reg, f'0x{reg:02X}')}"
        return name

    def _ap_prologue(self, what: str) -> None:
        if not self.ctrl_stat & CDBGPWRUPREQ or self.ctrl_stat & STICKY:
            self._check_sticky(what)
            self.wire.faults += 1
            raise Ack("FAULT", f"{what}: debug power domain is off (CTRL/STAT.CDBGPWRUPREQ = 0)")
        if self._stall > 0 or self.stalled:
            self._ap_ready()

    def read_ap(self, addr: int) -> int:
        apsel, reg = self.select >> 24, (self.select & 0xF0) | (addr & 0xC)
        self.wire.single(self._ap_name("R", apsel, reg), posted_read=True)
        self._ap_prologue("AP read")
        if apsel != 0:
            value = 0  # no AP there: IDR reads 0
        elif reg == DRW:
            value = self._drw_read()
        else:
            value = self._read_ap_reg(apsel, reg)
        self.rdbuff = value
        return value

    def write_ap(self, addr: int, data: int) -> None:
        apsel, reg = self.select >> 24, (self.select & 0xF0) | (addr & 0xC)
        self.wire.single(self._ap_name("W", apsel, reg))
        self._ap_prologue("AP write")
        if apsel != 0:
            return
        if reg == TAR:
            self.tar = data & 0xFFFF_FFFF
        else:
            self._write_ap_reg(reg, data & 0xFFFF_FFFF)

    def read_ap_multiple(self, addr: int, count: int) -> list[int]:
        apsel, reg = self._ap_reg(addr)
        self.wire.block(self._ap_name("R", apsel, reg), count, posted_read=True)
        self._ap_prologue("AP block read")
        if apsel == 0 and reg == DRW and self._fast_block():
            values = self._block_read(count)
        else:
            values = [self._read_ap_reg(apsel, reg) if apsel == 0 else 0 for _ in range(count)]
        if values:
            self.rdbuff = values[-1]
        return values

    def write_ap_multiple(self, addr: int, values: Sequence[int]) -> None:
        apsel, reg = self._ap_reg(addr)
        self.wire.block(self._ap_name("W", apsel, reg), len(values))
        self._ap_prologue("AP block write")
        if apsel != 0:
            return
        if reg == DRW and self._fast_block():
            self._block_write(values)
            return
        for v in values:
            self._write_ap_reg(reg, v & 0xFFFF_FFFF)

    # -- the AHB5-AP registers ----------------------------------------------------------------
    def _csw_value(self) -> int:
        sde = CSW_SDEVICEEN if self.board.secure_debug else 0  # SPIDEN, as the DPM leaves it
        return self.csw | CSW_DEVICEEN | sde

    def _read_ap_reg(self, apsel: int, reg: int) -> int:
        if reg == CSW:
            return self._csw_value()
        if reg == TAR:
            return self.tar
        if reg == DRW:
            return self._drw_read()
        if BD0 <= reg <= BD3:
            return self._banked_read(reg)
        if reg == BASE:
            return ROM_BASE_VALUE
        if reg == IDR:
            return AHB5_AP_IDR
        return 0  # CFG: no Large Address/Large Data, little-endian

    def _write_ap_reg(self, reg: int, data: int) -> None:
        if reg == CSW:
            size = data & CSW_SIZE
            if size not in SIZES:
                size = 2  # an unsupported size reads back as a supported one (ADIv5)
            inc = data & CSW_ADDRINC
            if inc not in (ADDRINC_OFF, ADDRINC_SINGLE):
                inc = ADDRINC_OFF  # packed increment is not implemented
            self.csw = (data & CSW_WRITABLE & ~(CSW_SIZE | CSW_ADDRINC)) | size | inc
        elif reg == TAR:
            self.tar = data
        elif reg == DRW:
            self._drw_write(data)
        elif BD0 <= reg <= BD3:
            self._banked_write(reg, data)

    @property
    def _secure(self) -> bool:
        return not self.csw & CSW_HNONSEC

    def _bus_error(self, exc: BusFault) -> Ack:
        self.ctrl_stat |= STICKYERR
        self.wire.faults += 1
        return Ack("FAULT", str(exc), exc.addr)

    def _advance(self, nbytes: int) -> None:
        if self.csw & CSW_ADDRINC == ADDRINC_SINGLE:
            self.tar = (self.tar & ~(TAR_WRAP - 1)) | ((self.tar + nbytes) & (TAR_WRAP - 1))

    def _drw_read(self) -> int:
        n = SIZES[self.csw & CSW_SIZE]
        addr = self.tar & ~(n - 1)
        try:
            raw = self.board.read_memory(addr, n, secure=self._secure)
        except BusFault as exc:
            raise self._bus_error(exc) from None
        self._advance(n)
        return int.from_bytes(raw, "little") << (8 * (addr & 3))

    def _drw_write(self, data: int) -> None:
        n = SIZES[self.csw & CSW_SIZE]
        addr = self.tar & ~(n - 1)
        lane = (data >> (8 * (addr & 3))) & ((1 << (8 * n)) - 1)
        try:
            self.board.write_memory(addr, lane.to_bytes(n, "little"), secure=self._secure)
        except BusFault as exc:
            raise self._bus_error(exc) from None
        self._advance(n)

    def _banked_read(self, reg: int) -> int:
        addr = (self.tar & ~0xF) | (reg & 0xC)
        try:
            return int.from_bytes(self.board.read_memory(addr, 4, secure=self._secure), "little")
        except BusFault as exc:
            raise self._bus_error(exc) from None

    def _banked_write(self, reg: int, data: int) -> None:
        addr = (self.tar & ~0xF) | (reg & 0xC)
        try:
            self.board.write_memory(addr, data.to_bytes(4, "little"), secure=self._secure)
        except BusFault as exc:
            raise self._bus_error(exc) from None

    # -- block transfers: the same words, fewer Python calls ----------------------------------
    def _fast_block(self) -> bool:
        return self.csw & (CSW_SIZE | CSW_ADDRINC) == 2 | ADDRINC_SINGLE and self.tar & 3 == 0

    def _chunks(self, count: int) -> list[tuple[int, int]]:
        """(address, words) runs of a ``count``-word auto-increment transfer, split where TAR wraps."""
        runs = []
        tar = self.tar
        while count:
            room = (TAR_WRAP - (tar & (TAR_WRAP - 1))) // 4
            n = min(room, count)
            runs.append((tar, n))
            count -= n
            tar = (tar & ~(TAR_WRAP - 1)) | ((tar + 4 * n) & (TAR_WRAP - 1))
        return runs

    def _block_read(self, count: int) -> list[int]:
        out: list[int] = []
        for addr, n in self._chunks(count):
            if _plain_memory(addr, 4 * n):
                try:
                    raw = self.board.read_memory(addr, 4 * n, secure=self._secure)
                except BusFault:
                    raw = None  # find the failing word the slow way
                if raw is not None:
                    out += [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 4 * n, 4)]
                    self.tar = addr
                    self._advance(4 * n)
                    continue
            self.tar = addr
            out += [self._drw_read() for _ in range(n)]
        return out

    def _block_write(self, values: Sequence[int]) -> None:
        i = 0
        for addr, n in self._chunks(len(values)):
            words = values[i : i + n]
            i += n
            if _plain_memory(addr, 4 * n):
                data = b"".join((w & 0xFFFF_FFFF).to_bytes(4, "little") for w in words)
                try:
                    self.board.write_memory(addr, data, secure=self._secure)
                except BusFault:
                    pass  # find the failing word the slow way (rewriting the same words is harmless)
                else:
                    self.tar = addr
                    self._advance(4 * n)
                    continue
            self.tar = addr
            for w in words:
                self._drw_write(w & 0xFFFF_FFFF)
