"""The secure lock: the last irreversible step before the board runs on its own.

On the M55M1 family the user-config area holds a secure-region lock word (CONFIG + 0x2C) and an
all-region lock word (CONFIG + 0x34); a low byte of 0x5A means unlocked, anything else locked.
We program the all-region lock (low byte -> 0x00, other bits untouched) through FMC ISP with
CFGUEN: it covers the secure region too, and one write is the least that can go wrong. The
debugger may lose access the moment it lands (the simulator) or at the next reset (silicon), so
the read-back may fail; the caller then proves the debugger has lost access.

"Debug lock on seal" (OTP config word, entry 27, policy bit 1): before the lock word, the DPM
debug lock is set in the secure and the non-secure instance (scu/dpm.c: ``DPM_SetDebugLock``; CTL
and NSCTL with the write verify code 0x5A), which is what closes the debugger in both security
states from the next reset. The DPM bits only ever get set, so a resumed run may set them again;
they come first so that a run killed between the two steps still finds the lock word open and
redoes both.
"""

from __future__ import annotations

from dataclasses import dataclass

from nucore.otp import OtpPolicy
from nusec.provision.errors import ProvisionError
from nusec.provision.link import fault_errors
from nusec.provision.otp_writer import ENTRY_SIZE, ISPCTL_CFGUEN, OTP_BASE, FmcIsp, ProgramLog

CONFIG_BASE = 0x0F30_0000
SCRLOCK_ADDR = CONFIG_BASE + 0x2C
ARLOCK_ADDR = CONFIG_BASE + 0x34
UNLOCKED_LOW_BYTE = 0x5A
LOCK_VALUE = 0xFFFF_FF00
CONFIG_ENTRY = 27  # OTP config word: low u32 = policy bits (docs/otp-layout.md)
DPM_CTL = 0x4040_2600  # DPM_BASE (AHB2PERIPH_BASE + 0x2600): secure DPM CTL
DPM_NS_CTL = 0x5040_2650  # DPM_NS->CTL (DPM_BASE + 0x50 + NS_OFFSET)
DPM_CTL_LOCK = 1 << 1
DPM_WVCODE = 0x5A << 24  # write verify code in RWVCODE (b31:24)
DPM_STS_OFFSET = 0x04
DPM_STS_LOCK = 1 << 17


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


def debug_lock_on_seal(isp: FmcIsp) -> bool:
    """The burned OTP policy asks for the DPM debug lock (policy bit DEBUG_LOCK_ON_SEAL)."""
    return bool(isp.read(OTP_BASE + CONFIG_ENTRY * ENTRY_SIZE) & OtpPolicy.DEBUG_LOCK_ON_SEAL)


def set_dpm_debug_lock(isp: FmcIsp) -> None:
    """DPM debug lock in both instances, checked in their status registers. IRREVERSIBLE."""
    mem = isp.mem
    for ctl in (DPM_CTL, DPM_NS_CTL):
        mem.write32(ctl, DPM_WVCODE | DPM_CTL_LOCK)
        if not mem.read32(ctl + DPM_STS_OFFSET) & DPM_STS_LOCK:
            raise ProvisionError(f"DPM debug lock at 0x{ctl:08X} did not take")


def enable_secure_lock(isp: FmcIsp, log: ProgramLog) -> None:
    """The DPM debug lock when the OTP policy asks for it, then the all-region lock word, at most
    once. IRREVERSIBLE."""
    state = read_lock_state(isp)
    if state.locked:
        return
    if debug_lock_on_seal(isp):
        set_dpm_debug_lock(isp)
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
