/* FMC ISP reads: the unique ID and OTP words. */
#ifndef HAL_FMC_H
#define HAL_FMC_H

#include <stdint.h>

#define HAL_FMC_UID_LEN 12

/* 0 on success, -1 when the ISP command failed (ISPFF). */
int hal_fmc_read_uid(uint8_t uid[HAL_FMC_UID_LEN]);
/* Read len bytes (multiple of 4) of OTP starting at entry `entry`. */
int hal_fmc_read_otp(uint32_t entry, uint8_t *out, uint32_t len);

#endif
