"""The simulator directory as an operator sees it: which boards exist, what each one's state file
says (read offline, without powering the board on), and the few things done to a board from the
outside: create it blank, arm a fault, erase it.

Everything here reads or replaces whole files; nothing runs a core. A board that another process
has open (``BoardBusy``) can still be read (its file is at most one flash batch behind), but it
cannot be created, erased or have faults armed, as a board on somebody else's bench cannot.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nusim import memmap
from nusim.board import BoardBusy, board_uid, claim_board, release_board
from nusim.faults import FAULT_KEYS
from nusim.nvstate import NvState, NvStore, default_sim_dir, valid_board_name

BLANK_WORD = b"\xff\xff\xff\xff"
BLANK_ENTRY = b"\xff" * 8


class SimBoardError(Exception):
    """A request about a simulated board that cannot be carried out (one line, for the CLI)."""


class BoardNotFound(SimBoardError):
    """No state file for that board in the directory."""


class BoardExists(SimBoardError):
    """``create`` of a board that already has a state file."""


def board_name(text: str) -> str:
    """The board name from ``NAME`` or ``sim:NAME``; raises ``SimBoardError`` for a bad name."""
    name = text[4:] if text.lower().startswith("sim:") else text
    if not valid_board_name(name):
        raise SimBoardError(f"invalid board name {text!r}: use 1-64 letters, digits, '-' or '_'")
    return name


def sim_directory(directory: Path | None) -> Path:
    """The directory given, else ``$NUSEC_SIM_DIR``, else ``~/.local/share/nusim``."""
    return directory if directory is not None else default_sim_dir()


def list_boards(directory: Path) -> list[str]:
    """Names of the boards with a state file, sorted."""
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.json") if valid_board_name(p.stem) and p.is_file())


def load_state(name: str, directory: Path) -> NvState:
    """A board's persisted state, read-only (no file lock, no power-on)."""
    store = NvStore(directory, name)
    if not store.exists():
        raise BoardNotFound(f"no simulated board {name!r} in {directory}")
    try:
        return store.load()
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise SimBoardError(f"state file of board {name!r} is unreadable: {exc}") from None


def in_use(name: str, directory: Path) -> bool:
    """True when a process holds the board's file lock. Read from ``/proc/locks`` where there is
    one, so asking never takes the lock (a probe could make a concurrent open fail as busy)."""
    path = directory / f"{name}.lock"
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    proc_locks = Path("/proc/locks")
    if proc_locks.is_file():
        ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        for line in proc_locks.read_text(encoding="ascii", errors="replace").splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == ident:
                return True
        return False
    with path.open("r", encoding="ascii") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


@contextmanager
def exclusive(name: str, directory: Path) -> Iterator[None]:
    """Hold the board's file lock for an offline change; ``SimBoardError`` if it is busy."""
    try:
        fh = claim_board(directory, name)
    except BoardBusy as exc:
        raise SimBoardError(f"{exc}; close that session first") from None
    try:
        yield
    finally:
        release_board(fh)


def create_board(name: str, directory: Path) -> Path:
    """Write a factory-blank board's state file; refuses to replace an existing board."""
    store = NvStore(directory, name)
    with exclusive(name, directory):
        if store.exists():
            raise BoardExists(f"simulated board {name!r} already exists in {directory} (erase it first)")
        store.save(NvState())
    return store.path


def erase_board(name: str, directory: Path) -> list[Path]:
    """Delete the board's state, fault plan and lock files: the only way to "unprovision" it."""
    store = NvStore(directory, name)
    with exclusive(name, directory):
        if not store.exists():
            raise BoardNotFound(f"no simulated board {name!r} in {directory}")
        removed = []
        for path in (store.path, fault_file(name, directory), directory / f"{name}.lock"):
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed


# -- fault plans --------------------------------------------------------------------------------
def fault_file(name: str, directory: Path) -> Path:
    return directory / f"{name}.faults.json"


def read_faults(name: str, directory: Path) -> dict[str, Any]:
    """The board's fault file as stored (``{}`` when none): armed knobs and the ``fired`` list."""
    path = fault_file(name, directory)
    if not path.is_file():
        return {}
    obj = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(obj, dict):
        raise SimBoardError(f"{path} is not a JSON object")
    return obj


def arm_faults(name: str, directory: Path, plan: dict[str, int]) -> Path:
    """Replace the board's fault plan (one-shot knobs of docs/sim-board.md, read at its next open)."""
    for key, value in plan.items():
        if key not in FAULT_KEYS or value < 0:
            raise SimBoardError(f"bad fault setting {key}={value}")
    if not NvStore(directory, name).exists():
        raise BoardNotFound(f"no simulated board {name!r} in {directory}")
    path = fault_file(name, directory)
    with exclusive(name, directory):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(plan), encoding="utf-8")
        os.replace(tmp, path)
    return path


def clear_faults(name: str, directory: Path) -> bool:
    """Remove the board's fault plan; True if there was one."""
    if not NvStore(directory, name).exists():
        raise BoardNotFound(f"no simulated board {name!r} in {directory}")
    path = fault_file(name, directory)
    with exclusive(name, directory):
        if path.exists():
            path.unlink()
            return True
    return False


# -- summaries ----------------------------------------------------------------------------------
def otp_entry_programmed(nv: NvState, n: int) -> bool:
    return bytes(nv.otp[8 * n : 8 * n + 8]) != BLANK_ENTRY


def otp_entry_locked(nv: NvState, n: int) -> bool:
    return bytes(nv.otp_locks[4 * n : 4 * n + 4]) != BLANK_WORD


def firmware_present(nv: NvState) -> bool:
    """An MCUboot image magic at the start of the application slot (signed or not)."""
    from nucore.mcuboot import IMAGE_MAGIC
    from nusim.bootrom import APP_SLOT_BASE

    off = APP_SLOT_BASE - memmap.FLASH_BASE
    return int.from_bytes(nv.flash[off : off + 4], "little") == IMAGE_MAGIC


def secure_boot_key_present(nv: NvState) -> bool:
    from nusim.bootrom import rotpk_from_otp

    return rotpk_from_otp(nv.otp) is not None


def lock_word(nv: NvState, addr: int) -> int:
    off = addr - memmap.CONFIG_BASE
    return int.from_bytes(nv.config[off : off + 4], "little")


@dataclass(frozen=True)
class BoardListing:
    """One line of ``nusec sim list``."""

    name: str
    uid: str
    secure_locked: bool
    all_locked: bool
    secure_boot_key: bool
    otp_programmed_entries: int
    otp_locked_entries: int
    firmware: bool
    in_use: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def listing(name: str, directory: Path) -> BoardListing:
    nv = load_state(name, directory)
    return BoardListing(
        name=name,
        uid=board_uid(name).hex(),
        secure_locked=(lock_word(nv, memmap.SCRLOCK_ADDR) & 0xFF) != memmap.UNLOCKED_LOW_BYTE,
        all_locked=(lock_word(nv, memmap.ARLOCK_ADDR) & 0xFF) != memmap.UNLOCKED_LOW_BYTE,
        secure_boot_key=secure_boot_key_present(nv),
        otp_programmed_entries=sum(otp_entry_programmed(nv, n) for n in range(memmap.OTP_ENTRIES)),
        otp_locked_entries=sum(otp_entry_locked(nv, n) for n in range(memmap.OTP_ENTRIES)),
        firmware=firmware_present(nv),
        in_use=in_use(name, directory),
    )


def _ks_slots(bank: str, keys: list[Any]) -> list[dict[str, Any]]:
    """Metadata of the used KeyStore slots; never the key bits."""
    from nusim import keystore

    owners = {
        keystore.OWNER_AES: "AES",
        keystore.OWNER_HMAC: "HMAC",
        keystore.OWNER_RSA_EXP: "RSA_EXP",
        keystore.OWNER_RSA_MID: "RSA_MID",
        keystore.OWNER_ECC: "ECC",
        keystore.OWNER_CPU: "CPU",
    }
    out = []
    for slot, key in enumerate(keys):
        if key is None:
            continue
        meta = key.metadata
        out.append(
            {
                "bank": bank,
                "slot": slot,
                "metadata": f"0x{meta:08x}",
                "owner": owners.get(keystore.meta_owner(meta), str(keystore.meta_owner(meta))),
                "bits": keystore.SIZE_BITS.get(keystore.meta_size(meta)),
                "readable": bool(meta & keystore.META_READABLE),
                "revoked": key.revoked,
            }
        )
    return out


def details(name: str, directory: Path) -> dict[str, Any]:
    """Everything ``nusec sim show`` reports, as JSON-ready data (no key material)."""
    from nucore.otp import FIELDS
    from nusim.bootrom import ImageRejected, predict_boot

    nv = load_state(name, directory)
    base = listing(name, directory).to_json()
    fields = []
    for field in FIELDS.values():
        entries = list(field.entries)
        programmed = [n for n in entries if otp_entry_programmed(nv, n)]
        locked = [n for n in entries if otp_entry_locked(nv, n)]
        fields.append(
            {
                "field": field.name,
                "entries": [field.entries.start, field.entries.stop - 1],
                "programmed": len(programmed),
                "locked": len(locked),
                "total": len(entries),
                "max_programs": max(nv.program_counts.per_entry()[n] for n in entries),
            }
        )
    counts = nv.program_counts
    try:
        image = predict_boot(nv)
        next_boot: dict[str, Any] = {
            "boots": True,
            "reason": None,
            "detail": "image verified",
            "image_version": "{}.{}.{}+{}".format(*image.version),
        }
    except ImageRejected as exc:
        next_boot = {"boots": False, "reason": exc.reason.name, "detail": str(exc), "image_version": None}
    return {
        **base,
        "directory": str(directory),
        "state_file": str(NvStore(directory, name).path),
        "lock_words": {
            "SCRLOCK": {
                "address": f"0x{memmap.SCRLOCK_ADDR:08x}",
                "value": f"0x{lock_word(nv, memmap.SCRLOCK_ADDR):08x}",
                "locked": base["secure_locked"],
            },
            "ARLOCK": {
                "address": f"0x{memmap.ARLOCK_ADDR:08x}",
                "value": f"0x{lock_word(nv, memmap.ARLOCK_ADDR):08x}",
                "locked": base["all_locked"],
            },
        },
        "otp_fields": fields,
        "keystore": _ks_slots("flash", nv.ks_flash) + _ks_slots("otp", nv.ks_otp),
        "program_counts": {
            "otp_words": counts.otp_words,
            "otp_locks": counts.otp_locks,
            "max_per_word": max(counts.otp_words),
            "max_per_lock_word": max(counts.otp_locks),
            "entries_written_more_than_once": [n for n, c in enumerate(counts.per_entry()) if c > 1],
            "locks_written_more_than_once": [n for n, c in enumerate(counts.otp_locks) if c > 1],
        },
        "last_boot": nv.last_boot.to_json() if nv.last_boot else None,
        "next_boot": next_boot,
        "faults": read_faults(name, directory),
    }
