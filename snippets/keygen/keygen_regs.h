/* Registers the snippet touches: FMC ISP, KeyStore, CRYPTO ECC (simulated interface, see
 * docs/sim-board.md). Secure addresses. */
#ifndef KEYGEN_REGS_H
#define KEYGEN_REGS_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))

#define FMC_BASE 0x40044000u
#define FMC_ISPCTL REG(FMC_BASE + 0x00)
#define FMC_ISPADDR REG(FMC_BASE + 0x04)
#define FMC_ISPDAT REG(FMC_BASE + 0x08)
#define FMC_ISPCMD REG(FMC_BASE + 0x0C)
#define FMC_ISPTRG REG(FMC_BASE + 0x10)
#define FMC_ISPCTL_ISPEN (1u << 0)
#define FMC_ISPCTL_ISPFF (1u << 6)
#define FMC_ISPCMD_READ_UID 0x04u

#define KS_BASE 0x40220000u
#define KS_CTL REG(KS_BASE + 0x00)
#define KS_METADATA REG(KS_BASE + 0x04)
#define KS_STS REG(KS_BASE + 0x08)
#define KS_OTPSTS REG(KS_BASE + 0x40)
#define KS_CTL_START (1u << 0)
#define KS_CTL_INIT (1u << 8)
#define KS_STS_EIF (1u << 1)
#define KS_STS_INITDONE (1u << 7)
#define KS_MEM_OTP 2u
#define KS_OWNER_ECC 4u
#define KS_SIZE_256 6u
#define KS_OTP_SLOTS 15u
#define KS_META(dst, owner, size, readable, number)                                             \
    (1u | 2u | ((readable) ? 4u : 0u) | ((uint32_t)(size) << 8) | ((uint32_t)(owner) << 16) | \
     ((uint32_t)(number) << 20) | ((uint32_t)(dst) << 30))

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
