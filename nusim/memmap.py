"""Addresses and sizes of the simulated M55S1-like part (M55M1 values from Nuvoton's public BSP).

Secure addresses are canonical; every peripheral also answers at its non-secure alias
(``+NS_ALIAS``). OTP and the config area are not on the bus: they are reached only through FMC ISP
commands, as on the part.
"""

from __future__ import annotations

NS_ALIAS = 0x1000_0000

# Memories.
FLASH_BASE = 0x0010_0000  # APROM (FMC_APROM_BASE)
FLASH_SIZE = 0x0020_0000  # 2 MiB, two banks
FLASH_PAGE_SIZE = 0x2000  # 8 KiB erase unit
SRAM_BASE = 0x2000_0000
SRAM_SIZE = 0x0020_0000  # simplified: one 2 MiB SRAM covering DTCM and SRAM0-2

# Non-volatile areas behind the FMC.
CONFIG_BASE = 0x0F30_0000
CONFIG_SIZE = 0x100  # 64 user-config words
SCRLOCK_ADDR = CONFIG_BASE + 0x2C  # secure-region lock word, low byte 0x5A = unlocked
ARLOCK_ADDR = CONFIG_BASE + 0x34  # all-region lock word, low byte 0x5A = unlocked
UNLOCKED_LOW_BYTE = 0x5A
OTP_BASE = 0x0F31_0000
OTP_ENTRIES = 256
OTP_SIZE = OTP_ENTRIES * 8
OTP_LOCK_BASE = OTP_BASE + 0x800
OTP_LOCK_SIZE = OTP_ENTRIES * 4

# Peripherals (secure addresses).
FMC_BASE = 0x4004_4000
CRYPTO_BASE = 0x4020_A000
KS_BASE = 0x4022_0000
TRNG_BASE = 0x4029_6000  # M55M1.h: APB3PERIPH_BASE (0x40290000) + 0x6000
SYS_BASE = 0x4000_0000  # M55M1.h: AXIPERIPH_BASE + 0x0000 (REGLCTL, PDID, RSTSTS modelled)
CLK_BASE = 0x4000_1000  # M55M1.h: AXIPERIPH_BASE + 0x1000 (module clock enables modelled)
DPM_BASE = 0x4040_2600  # M55M1.h: AHB2PERIPH_BASE (0x40400000) + 0x2600; DPM_NS = +0x50 + NS_ALIAS
PERIPH_BLOCK = 0x1000


def is_non_secure(addr: int) -> bool:
    """An address in a non-secure alias (+0x10000000 of the secure code, SRAM or peripherals)."""
    return (addr >> 28) in (0x1, 0x3, 0x5)


# Private peripheral bus as the debugger sees it.
ITM_BASE = 0xE000_0000
DWT_BASE = 0xE000_1000
FPB_BASE = 0xE000_2000
SCS_BASE = 0xE000_E000
ROM_TABLE_BASE = 0xE00F_F000
PPB_BASE = 0xE000_0000
PPB_SIZE = 0x0010_0000
