/* Register addresses of the M55M1-like part the reference firmware runs on.
 * Bases are the secure addresses from Nuvoton's public M55M1 BSP (M55M1.h); register offsets
 * follow the Nuvoton StdDriver headers (uart_reg.h, fmc_reg.h, ks_reg.h, crypto_reg.h). */
#ifndef FW_REGS_H
#define FW_REGS_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* Memory map (M55M1.h: FLASH_BASE, SRAM_BASE). The MCUboot image starts at FLASH_BASE; its
 * 32-byte header is followed by this firmware's vector table. */
#define FW_FLASH_BASE 0x00100000u
#define FW_IMAGE_HEADER_SIZE 0x20u

/* UART0 = APB0PERIPH_BASE (0x40240000) + 0xD000. */
#define UART0_BASE 0x4024D000u
#define UART_DAT 0x00u
#define UART_LINE 0x0Cu
#define UART_FIFOSTS 0x18u
#define UART_LINE_WLS_8BIT 0x3u
#define UART_FIFOSTS_RXEMPTY (1u << 14)
#define UART_FIFOSTS_TXFULL (1u << 23)

/* FMC ISP (AXIPERIPH_BASE + 0x44000). */
#define FMC_BASE 0x40044000u
#define FMC_ISPCTL 0x00u
#define FMC_ISPADDR 0x04u
#define FMC_ISPDAT 0x08u
#define FMC_ISPCMD 0x0Cu
#define FMC_ISPTRG 0x10u
#define FMC_ISPCTL_ISPEN (1u << 0)
#define FMC_ISPCTL_ISPFF (1u << 6)
#define FMC_ISPTRG_ISPGO (1u << 0)
#define FMC_CMD_READ 0x00u
#define FMC_CMD_READ_UID 0x04u

/* OTP (256 x 64-bit entries, reached through FMC ISP READ). */
#define FW_OTP_BASE 0x0F310000u
#define FW_OTP_ROTPK_ENTRY 17u /* entries 17-24: SecureBoot public key X||Y (docs/otp-layout.md) */

/* KeyStore (AHB0PERIPH_BASE + 0x20000); register layout as ks_reg.h. */
#define KS_BASE 0x40220000u
#define KS_CTL 0x00u
#define KS_METADATA 0x04u
#define KS_STS 0x08u
#define KS_CTL_START (1u << 0)
#define KS_CTL_OPMODE_POS 1u
#define KS_CTL_INIT (1u << 8)
#define KS_OP_ERASE 2u
#define KS_STS_IF (1u << 0)
#define KS_STS_EIF (1u << 1)
#define KS_STS_BUSY (1u << 2)
#define KS_STS_INITDONE (1u << 7)
#define KS_META_SEC (1u << 0)
#define KS_META_PRIV (1u << 1)
#define KS_META_SIZE_256 (6u << 8)
#define KS_META_OWNER_POS 16u
#define KS_META_NUMBER_POS 20u
#define KS_META_DST_POS 30u
#define KS_OWNER_AES 0u
#define KS_OWNER_ECC 4u

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
