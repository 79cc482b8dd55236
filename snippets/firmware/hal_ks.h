/* KeyStore (KS) slots as the firmware names them. Key material never passes through the CPU:
 * slots are only handed to the CRYPTO engine (hal_crypto.h). */
#ifndef HAL_KS_H
#define HAL_KS_H

#include <stdint.h>

#define HAL_KS_SRAM 0u
#define HAL_KS_FLASH 1u
#define HAL_KS_OTP 2u

typedef struct {
    uint8_t mem; /* HAL_KS_SRAM / HAL_KS_FLASH / HAL_KS_OTP (KS METADATA.DST) */
    uint8_t num; /* KS METADATA.NUMBER */
} hal_ks_key;

/* Bring the KeyStore up after reset (KS_CTL.INIT); 0 once INITDONE. */
int hal_ks_init(void);
/* METADATA word for a 256-bit key of `owner` in memory `mem`, slot `num`. */
uint32_t hal_ks_meta(uint8_t mem, uint8_t num, uint32_t owner);
/* Erase one key; 0 on success. */
int hal_ks_erase(hal_ks_key key);

#endif
