"""Flash layout of the boot chain, one constant each (twin of ``snippets/common/nusec_layout.h``;
tests/sim check that the two agree).

As SecureBootDemo lays it out: NuBL2 at the APROM base, an MCUboot image with a 0x400 header
(FwSign.sh ``-H 0x400 --pad-header -S 0x40000``), and the application NuBL2 verifies 256 KiB
above it (MCUboot with a 0x400 header as well, linked at 0x00140400: ``bin/firmware_bl2.bin``;
VTOR needs a 128-byte aligned vector table, which a 0x20 header would not give).
"""

from __future__ import annotations

NUBL2_BASE = 0x0010_0000
NUBL2_SLOT_SIZE = 0x4_0000
NUBL2_HEADER_SIZE = 0x400
APP_BASE = 0x0014_0000
APP_SLOT_SIZE = 0x4_0000
APP_HEADER_SIZE = 0x400
OTP_SECURE_BOOT_PUB_ENTRY = 17
