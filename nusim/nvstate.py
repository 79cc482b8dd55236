"""The board's non-volatile state (flash, OTP + lock words, config words, KeyStore flash/OTP slots)
and the one JSON file per board that holds it across "power cycles".

Writes go to a temporary file that is fsync'ed and renamed over the old one, so an interrupted
run leaves either the previous or the new state, never a torn file (``NUSEC_SIM_FSYNC=0`` keeps
the rename but skips the fsyncs: for test suites, where a machine crash is not the fault being
modelled). The file is the silicon: it holds KeyStore keys in clear, so treat a simulator
directory like a board on the bench.

Besides the cells, the file keeps the simulator's own bookkeeping, which no register exposes:
how many PROGRAM commands reached each OTP word and lock word (``program_counts``) and what
secure boot decided at the last reset (``last_boot``).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nusim import memmap
from nusim.atomic import replace_file

STATE_VERSION = 1
KS_SRAM_SLOTS = 32
KS_FLASH_SLOTS = 32
KS_OTP_SLOTS = 15
OTP_WORDS = memmap.OTP_SIZE // 4
FSYNC_ENV = "NUSEC_SIM_FSYNC"
DPM_KEYS = ("s_dbgdis", "s_lock", "ns_dbgdis", "ns_lock")


def fsync_enabled() -> bool:
    """False only when ``$NUSEC_SIM_FSYNC`` is ``0``: the default stays durable."""
    return os.environ.get(FSYNC_ENV, "1").strip() != "0"


def default_sim_dir() -> Path:
    """Where boards live: ``$NUSEC_SIM_DIR`` or ``~/.local/share/nusim``."""
    env = os.environ.get("NUSEC_SIM_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "nusec" / "sim"


def valid_board_name(name: str) -> bool:
    """Board names become file names: letters, digits, ``-`` and ``_`` only."""
    return 0 < len(name) <= 64 and all(c.isalnum() or c in "-_" for c in name)


@dataclass
class KsKey:
    """One KeyStore slot's content: key bits and the METADATA word it was written with."""

    data: bytes
    metadata: int
    revoked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data.hex(), "metadata": self.metadata, "revoked": self.revoked}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> KsKey:
        return cls(bytes.fromhex(obj["data"]), int(obj["metadata"]), bool(obj["revoked"]))


def _blank_config() -> bytearray:
    cfg = bytearray(b"\xff" * memmap.CONFIG_SIZE)
    for addr in (memmap.SCRLOCK_ADDR, memmap.ARLOCK_ADDR):
        cfg[addr - memmap.CONFIG_BASE] = memmap.UNLOCKED_LOW_BYTE
    return cfg


@dataclass
class ProgramCounts:
    """PROGRAM/PROGRAM_64 commands that reached each OTP data word and each OTP lock word, whether
    the FMC accepted them or refused them (ISPFF): a count above 1 means something tried to write
    a write-once word twice, which is what a resumed provisioning run must never do."""

    otp_words: list[int] = field(default_factory=lambda: [0] * OTP_WORDS)
    otp_locks: list[int] = field(default_factory=lambda: [0] * memmap.OTP_ENTRIES)

    def per_entry(self) -> list[int]:
        """For each of the 256 entries, the most times any one of its two data words was
        programmed: ``max(per_entry()) <= 1`` proves no entry was written twice."""
        return [max(self.otp_words[2 * n], self.otp_words[2 * n + 1]) for n in range(memmap.OTP_ENTRIES)]

    def to_json(self) -> dict[str, list[int]]:
        return {"otp_words": list(self.otp_words), "otp_locks": list(self.otp_locks)}

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None) -> ProgramCounts:
        if obj is None:
            return cls()  # a state file from before the counters existed
        words, locks = obj.get("otp_words"), obj.get("otp_locks")
        if (
            not isinstance(words, list)
            or not isinstance(locks, list)
            or len(words) != OTP_WORDS
            or len(locks) != memmap.OTP_ENTRIES
            or not all(isinstance(v, int) and v >= 0 for v in (*words, *locks))
        ):
            raise ValueError("simulator state has malformed program_counts")
        return cls(list(words), list(locks))


@dataclass(frozen=True)
class BootRecord:
    """What the boot ROM decided at the last reset, kept so tools can report it offline."""

    booted: bool
    reason: str | None  # BootFailReason name when refused
    detail: str
    image_version: str | None  # "major.minor.revision+build" of the image it ran

    def to_json(self) -> dict[str, Any]:
        return {
            "booted": self.booted,
            "reason": self.reason,
            "detail": self.detail,
            "image_version": self.image_version,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None) -> BootRecord | None:
        if obj is None:
            return None
        return cls(bool(obj["booted"]), obj.get("reason"), str(obj["detail"]), obj.get("image_version"))


@dataclass
class NvState:
    """Everything that survives a power cycle. Blank flash/OTP read all-ones."""

    flash: bytearray = field(default_factory=lambda: bytearray(b"\xff" * memmap.FLASH_SIZE))
    otp: bytearray = field(default_factory=lambda: bytearray(b"\xff" * memmap.OTP_SIZE))
    otp_locks: bytearray = field(default_factory=lambda: bytearray(b"\xff" * memmap.OTP_LOCK_SIZE))
    config: bytearray = field(default_factory=_blank_config)
    ks_flash: list[KsKey | None] = field(default_factory=lambda: [None] * KS_FLASH_SLOTS)
    ks_otp: list[KsKey | None] = field(default_factory=lambda: [None] * KS_OTP_SLOTS)
    ks_otp_locked: list[bool] = field(default_factory=lambda: [False] * KS_OTP_SLOTS)
    ks_otp_erases: list[int] = field(default_factory=lambda: [0] * KS_OTP_SLOTS)
    program_counts: ProgramCounts = field(default_factory=ProgramCounts)
    last_boot: BootRecord | None = None
    dpm: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(DPM_KEYS, False))

    def to_json(self, board: str) -> dict[str, Any]:
        pages: dict[str, str] = {}
        blank = b"\xff" * memmap.FLASH_PAGE_SIZE
        for off in range(0, memmap.FLASH_SIZE, memmap.FLASH_PAGE_SIZE):
            page = bytes(self.flash[off : off + memmap.FLASH_PAGE_SIZE])
            if page != blank:
                pages[str(off // memmap.FLASH_PAGE_SIZE)] = base64.b64encode(page).decode()
        return {
            "version": STATE_VERSION,
            "board": board,
            "flash_pages": pages,
            "otp": self.otp.hex(),
            "otp_locks": self.otp_locks.hex(),
            "config": self.config.hex(),
            "ks_flash": [k.to_json() if k else None for k in self.ks_flash],
            "ks_otp": [k.to_json() if k else None for k in self.ks_otp],
            "ks_otp_locked": list(self.ks_otp_locked),
            "ks_otp_erases": list(self.ks_otp_erases),
            "program_counts": self.program_counts.to_json(),
            "last_boot": self.last_boot.to_json() if self.last_boot else None,
            "dpm": dict(self.dpm),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> NvState:
        if obj.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported simulator state version {obj.get('version')!r}")
        st = cls()
        for idx, b64 in obj["flash_pages"].items():
            off = int(idx) * memmap.FLASH_PAGE_SIZE
            page = base64.b64decode(b64)
            if len(page) != memmap.FLASH_PAGE_SIZE or not 0 <= off < memmap.FLASH_SIZE:
                raise ValueError(f"bad flash page {idx} in simulator state")
            st.flash[off : off + len(page)] = page
        st.otp = bytearray.fromhex(obj["otp"])
        st.otp_locks = bytearray.fromhex(obj["otp_locks"])
        st.config = bytearray.fromhex(obj["config"])
        if (len(st.otp), len(st.otp_locks), len(st.config)) != (
            memmap.OTP_SIZE,
            memmap.OTP_LOCK_SIZE,
            memmap.CONFIG_SIZE,
        ):
            raise ValueError("simulator state has OTP/config areas of the wrong size")
        st.ks_flash = [KsKey.from_json(k) if k else None for k in obj["ks_flash"]]
        st.ks_otp = [KsKey.from_json(k) if k else None for k in obj["ks_otp"]]
        locked = obj.get("ks_otp_locked", [False] * KS_OTP_SLOTS)  # files from before the field
        erases = obj.get("ks_otp_erases", [0] * KS_OTP_SLOTS)
        if len(locked) != KS_OTP_SLOTS or len(erases) != KS_OTP_SLOTS:
            raise ValueError("simulator state has KeyStore OTP lock/erase lists of the wrong size")
        st.ks_otp_locked = [bool(v) for v in locked]
        st.ks_otp_erases = [int(v) for v in erases]
        st.program_counts = ProgramCounts.from_json(obj.get("program_counts"))
        st.last_boot = BootRecord.from_json(obj.get("last_boot"))
        dpm = obj.get("dpm", {})  # files from before the DPM model: nothing set
        st.dpm = {k: bool(dpm.get(k, False)) for k in DPM_KEYS}
        return st


class NvStore:
    """The state file of one board: ``<dir>/<board>.json``."""

    def __init__(self, directory: Path, board: str) -> None:
        if not valid_board_name(board):
            raise ValueError(f"invalid simulated board name {board!r} (letters, digits, - and _)")
        self.directory = directory
        self.board = board
        self.path = directory / f"{board}.json"

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> NvState:
        """The stored state, or a factory-blank part when the board has never been powered."""
        if not self.path.is_file():
            return NvState()
        with self.path.open("r", encoding="ascii") as fh:
            return NvState.from_json(json.load(fh))

    def save(self, state: NvState) -> None:
        """Atomically replace the state file (temp file, fsync, rename, fsync dir; the fsyncs are
        skipped when ``fsync_enabled()`` is false, the rename never is)."""
        durable = fsync_enabled()
        self.directory.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state.to_json(self.board), separators=(",", ":")).encode("ascii")
        replace_file(self.path, data, mode=0o600, sync=os.fsync if durable else None)
        if not durable:
            return
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
