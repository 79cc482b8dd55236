/* The firmware's registers: SYS, CLK, FMC, KS and UART0 as the M55M1 BSP publishes them
 * (snippets/common/m55m1.h), plus the CRYPTO interface the simulator models. */
#ifndef FW_REGS_H
#define FW_REGS_H

#include <stdint.h>

#include "m55m1.h"

/* The MCUboot image starts at FLASH_BASE; its 32-byte header is followed by this firmware's
 * vector table. */
#define FW_IMAGE_HEADER_SIZE 0x20u
#define FW_OTP_ROTPK_ENTRY 17u /* entries 17-24: SecureBoot public key X||Y (docs/otp-layout.md) */

/* CRYPTO (AHB0PERIPH_BASE + 0xA000): ECC and AES engines with KeyStore key selection, as the
 * simulator models them (docs/sim-board.md). 256-bit operands are 32-byte big-endian strings,
 * copied into consecutive register words in memory order. */
#define CRYPTO_BASE 0x4020A000u
#define CRPT_AES_CTL 0x100u
#define CRPT_AES_STS 0x104u
#define CRPT_AES_KSCTL 0x110u
#define CRPT_AES_DATIN 0x120u
#define CRPT_AES_DATOUT 0x130u
#define CRPT_ECC_CTL 0x800u
#define CRPT_ECC_STS 0x804u
#define CRPT_ECC_X1 0x808u
#define CRPT_ECC_Y1 0x850u
#define CRPT_ECC_X2 0x898u
#define CRPT_ECC_Y2 0x8E0u
#define CRPT_ECC_K 0xA00u
#define CRPT_ECC_KSCTL 0xF40u
#define CRPT_ECC_KSMETA 0xF48u
#define CRPT_ECC_KSNUM 0xF4Cu
#define CRPT_CTL_START (1u << 0)
#define CRPT_ECC_OP_POS 8u
#define CRPT_AES_CTL_ENCRYPT (1u << 16)
#define CRPT_STS_DONE (1u << 1)
#define CRPT_STS_KSERR (1u << 2)
#define CRPT_STS_ERR (1u << 3)
#define CRPT_STS_VFAIL (1u << 4)
#define CRPT_KSCTL_RSRC (1u << 6)
#define CRPT_KSCTL_MEM_POS 7u
#define CRPT_KSCTL_WDST (1u << 15)
#define ECC_OP_KEYGEN 1u
#define ECC_OP_PUBKEY 2u
#define ECC_OP_SIGN 3u
#define ECC_OP_VERIFY 4u
#define ECC_OP_ECDH 5u

#endif
