"""pyocd target type for the simulated M55S1-like part (pyocd has no M55M1/M55S1 built in).

Registered in pyocd's target table as ``nusec_m55s1sim`` when the ``sim`` probe plugin loads; the
sim probe also selects it for its board unless ``--target``/``target_override`` says otherwise.
Flash is listed for the memory map but has no flash algorithm: program it through the FMC ISP
registers (as the provisioning flow does). OTP and the config area are reached only through FMC
ISP commands; they are listed as device regions so tools know where they are.
"""

from __future__ import annotations

from pyocd.core.memory_map import DeviceRegion, MemoryMap, RamRegion, RomRegion
from pyocd.coresight.coresight_target import CoreSightTarget

from nusim import memmap

TARGET_NAME = "nusec_m55s1sim"


class M55S1Sim(CoreSightTarget):  # type: ignore[misc]
    """Memory map of the simulated part: the secure addresses (access ``s``) and the non-secure
    aliases of flash, SRAM and the peripherals (M55M1.ld: IDAU NS at +0x10000000)."""

    VENDOR = "Nuvoton"

    MEMORY_MAP = MemoryMap(
        RomRegion(
            name="aprom",
            start=memmap.FLASH_BASE,
            length=memmap.FLASH_SIZE,
            access="rxs",
            is_boot_memory=True,
            is_testable=False,
        ),
        RomRegion(
            name="aprom_ns",
            start=memmap.FLASH_BASE + memmap.NS_ALIAS,
            length=memmap.FLASH_SIZE,
            access="rx",
            is_testable=False,
        ),
        RamRegion(
            name="sram", start=memmap.SRAM_BASE, length=memmap.SRAM_SIZE, access="rwxs", is_default=True
        ),
        RamRegion(
            name="sram_ns",
            start=memmap.SRAM_BASE + memmap.NS_ALIAS,
            length=memmap.SRAM_SIZE,
            access="rwx",
            is_default=False,
            is_testable=False,
        ),
        DeviceRegion(
            name="config",
            start=memmap.CONFIG_BASE,
            length=memmap.CONFIG_SIZE,
            access="rws",
            is_testable=False,
        ),
        DeviceRegion(
            name="otp",
            start=memmap.OTP_BASE,
            length=memmap.OTP_SIZE + memmap.OTP_LOCK_SIZE + 0x800,
            access="rws",
            is_testable=False,
        ),
        DeviceRegion(
            name="peripherals", start=0x4000_0000, length=0x1000_0000, access="rws", is_testable=False
        ),
        DeviceRegion(
            name="peripherals_ns", start=0x5000_0000, length=0x1000_0000, access="rw", is_testable=False
        ),
    )

    def __init__(self, session: object) -> None:
        super().__init__(session, self.MEMORY_MAP)


def register() -> None:
    """Add the target type to pyocd's table (idempotent)."""
    from pyocd.target import TARGET

    TARGET.setdefault(TARGET_NAME, M55S1Sim)
