/* The snippet's own register helpers on top of snippets/common/m55m1.h (SYS, CLK, FMC, KS as
 * published), plus the CRYPTO ECC interface the simulator models (docs/sim-board.md). */
#ifndef KEYGEN_REGS_H
#define KEYGEN_REGS_H

#include <stdint.h>

#include "m55m1.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define KS_OTP_SLOTS 15u
#define KS_META(dst, owner, size, readable, number)                                             \
    (KS_META_SEC | KS_META_PRIV | ((readable) ? KS_META_READABLE : 0u) |                        \
     ((uint32_t)(size) << KS_META_SIZE_POS) | ((uint32_t)(owner) << KS_META_OWNER_POS) |       \
     ((uint32_t)(number) << KS_META_NUMBER_POS) | ((uint32_t)(dst) << KS_META_DST_POS))

#define CRPT_BASE 0x4020A000u
#define ECC_CTL REG(CRPT_BASE + 0x800)
#define ECC_STS REG(CRPT_BASE + 0x804)
#define ECC_X1 ((volatile uint32_t *)(CRPT_BASE + 0x808))
#define ECC_Y1 ((volatile uint32_t *)(CRPT_BASE + 0x850))
#define ECC_X2 ((volatile uint32_t *)(CRPT_BASE + 0x898))
#define ECC_Y2 ((volatile uint32_t *)(CRPT_BASE + 0x8E0))
#define ECC_K ((volatile uint32_t *)(CRPT_BASE + 0xA00))
#define ECC_KSCTL REG(CRPT_BASE + 0xF40)
#define ECC_KSMETA REG(CRPT_BASE + 0xF48)
#define ECC_CTL_START (1u << 0)
#define ECC_OP(n) ((uint32_t)(n) << 8)
#define ECC_OP_KEYGEN 1u
#define ECC_OP_PUBKEY 2u
#define ECC_OP_SIGN 3u
#define ECC_STS_DONE (1u << 1)
#define ECC_STS_KSERR (1u << 2)
#define ECC_STS_ERR (1u << 3)
#define ECC_KSCTL_RSRC (1u << 6)
#define ECC_KSCTL_KEY(mem, num) (((uint32_t)(num) & 0x3Fu) | ECC_KSCTL_RSRC | ((uint32_t)(mem) << 7))

#endif
