"""The secure lock: the last irreversible step before the board runs on its own.

On the M55M1 family the user-config area holds a secure-region lock word (CONFIG + 0x2C) and an
all-region lock word (CONFIG + 0x34); a low byte of 0x5A means unlocked, anything else locked.
We program the all-region lock (low byte -> 0x00, other bits untouched) through FMC ISP with
CFGUEN: it covers the secure region too, and one write is the least that can go wrong. The
debugger may lose access the moment it lands (the simulator) or at the next reset (silicon), so
the read-back may fail; the caller then proves the debugger has lost access.
"""

from __future__ import annotations

from dataclasses import dataclass

from nusec.provision.errors import ProvisionError
from nusec.provision.link import fault_errors
from nusec.provision.otp_writer import ISPCTL_CFGUEN, FmcIsp, ProgramLog

CONFIG_BASE = 0x0F30_0000
SCRLOCK_ADDR = CONFIG_BASE + 0x2C
ARLOCK_ADDR = CONFIG_BASE + 0x34
UNLOCKED_LOW_BYTE = 0x5A
LOCK_VALUE = 0xFFFF_FF00


@dataclass(frozen=True)
class LockState:
    secure_region_locked: bool
    all_region_locked: bool

    @property
    def locked(self) -> bool:
        return self.secure_region_locked or self.all_region_locked


def read_lock_state(isp: FmcIsp) -> LockState:
    """Read both lock words through ISP (works only while the debugger still has access)."""
    return LockState(
        (isp.read(SCRLOCK_ADDR) & 0xFF) != UNLOCKED_LOW_BYTE,
        (isp.read(ARLOCK_ADDR) & 0xFF) != UNLOCKED_LOW_BYTE,
    )


def enable_secure_lock(isp: FmcIsp, log: ProgramLog) -> None:
    """Program the all-region lock word, at most once. IRREVERSIBLE."""
    state = read_lock_state(isp)
    if state.locked:
        return
    log.intent(ARLOCK_ADDR)
    try:
        isp.program(ARLOCK_ADDR, LOCK_VALUE, enable=ISPCTL_CFGUEN)
    except fault_errors():
        log.done(ARLOCK_ADDR)
        return  # the lock took effect while the ISP command completed: the debugger is out
    log.done(ARLOCK_ADDR)
    try:
        still_open = (isp.read(ARLOCK_ADDR) & 0xFF) == UNLOCKED_LOW_BYTE
    except fault_errors():
        return
    if still_open:
        raise ProvisionError(f"lock word at 0x{ARLOCK_ADDR:08X} still reads unlocked after programming")
