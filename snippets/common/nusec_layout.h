/* Flash layout of the boot chain (twin of nuboard/layout.py; tests/sim check they agree).
 * As SecureBootDemo lays it out: NuBL2 at the APROM base (an MCUboot image with a 0x400 header,
 * FwSign.sh -H 0x400), the application NuBL2 verifies 256 KiB above it (MCUboot, 0x400 header too:
 * VTOR needs a 128-byte aligned vector table). */
#ifndef NUSEC_LAYOUT_H
#define NUSEC_LAYOUT_H

#define NUBL2_BASE 0x00100000u
#define NUBL2_SLOT_SIZE 0x00040000u
#define NUBL2_HEADER_SIZE 0x400u
#define APP_BASE 0x00140000u
#define APP_SLOT_SIZE 0x00040000u
#define APP_HEADER_SIZE 0x400u
#define OTP_SECURE_BOOT_PUB_ENTRY 17u /* entries 17-24: SecureBoot_PUB X||Y (docs/otp-layout.md) */

#endif
