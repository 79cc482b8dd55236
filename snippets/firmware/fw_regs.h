/* The firmware's registers: the M55M1 as its BSP publishes them (snippets/common/m55m1.h). */
#ifndef FW_REGS_H
#define FW_REGS_H

#include <stdint.h>

#include "m55m1.h"

/* The MCUboot image starts at FLASH_BASE; its 32-byte header is followed by this firmware's
 * vector table. */
#define FW_IMAGE_HEADER_SIZE 0x20u
#define FW_OTP_ROTPK_ENTRY 17u /* entries 17-24: SecureBoot public key X||Y (docs/otp-layout.md) */

#endif
