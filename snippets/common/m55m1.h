/* M55M1 registers the board C touches, as Nuvoton's public M55M1 BSP publishes them
 * (Library/Device/Nuvoton/M55M1/Include: M55M1.h bases, *_reg.h offsets and bits). Every value
 * here is a row of nuboard/conformance.toml, which names its source; tests/sim check this
 * header against that table (and the simulator's model against the same table).
 * Registers are given as a block base plus an offset: REG32(FMC_BASE + FMC_ISPCTL). Secure
 * addresses; the non-secure alias is +NS_OFFSET. */
#ifndef M55M1_H
#define M55M1_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define NS_OFFSET 0x10000000u

/* Memory map (M55M1.h). */
#define FLASH_BASE 0x00100000u
#define SRAM_BASE 0x20100000u

/* SYS (AXIPERIPH_BASE + 0x0000): register write-protection. */
#define SYS_BASE 0x40000000u
#define SYS_PDID 0x000u
#define SYS_REGLCTL 0x100u
#define SYS_REGLCTL_KEY1 0x59u
#define SYS_REGLCTL_KEY2 0x16u
#define SYS_REGLCTL_KEY3 0x88u
#define SYS_REGLCTL_UNLOCKED (1u << 0)

/* CLK (AXIPERIPH_BASE + 0x1000): module clock enables (not write-protected). */
#define CLK_BASE 0x40001000u
#define CLK_CRYPTOCTL 0x218u
#define CLK_CRYPTOCTL_CRYPTO0CKEN (1u << 0)
#define CLK_FMCCTL 0x23Cu
#define CLK_FMCCTL_FMC0CKEN (1u << 0)
#define CLK_FMCCTL_ISP0CKEN (1u << 16)
#define CLK_KSCTL 0x268u
#define CLK_KSCTL_KS0CKEN (1u << 0)
#define CLK_TRNGCTL 0x2D8u
#define CLK_TRNGCTL_TRNG0CKEN (1u << 0)
#define CLK_UARTCTL 0x2E0u
#define CLK_UARTCTL_UART0CKEN (1u << 0)

/* FMC (AXIPERIPH_BASE + 0x44000): ISP. ISPCTL and ISPTRG are write-protected (SYS_REGLCTL). */
#define FMC_BASE 0x40044000u
#define FMC_ISPCTL 0x00u
#define FMC_ISPADDR 0x04u
#define FMC_ISPDAT 0x08u
#define FMC_ISPCMD 0x0Cu
#define FMC_ISPTRG 0x10u
#define FMC_ISPSTS 0x40u
#define FMC_ISPCTL_ISPEN (1u << 0)
#define FMC_ISPCTL_APUEN (1u << 3)
#define FMC_ISPCTL_CFGUEN (1u << 4)
#define FMC_ISPCTL_ISPFF (1u << 6)
#define FMC_ISPTRG_ISPGO (1u << 0)
#define FMC_CMD_READ 0x00u
#define FMC_CMD_READ_UID 0x04u
#define FMC_CMD_PROGRAM 0x21u
#define FMC_CMD_PAGE_ERASE 0x22u
#define FMC_OTP_BASE 0x0F310000u

/* KS, the KeyStore (AHB0PERIPH_BASE + 0x20000), ks_reg.h. */
#define KS_BASE 0x40220000u
#define KS_CTL 0x00u
#define KS_METADATA 0x04u
#define KS_STS 0x08u
#define KS_REMAIN 0x0Cu
#define KS_KEY0 0x20u
#define KS_OTPSTS 0x40u
#define KS_CTL_START (1u << 0)
#define KS_CTL_OPMODE_POS 1u
#define KS_CTL_CONT (1u << 7)
#define KS_CTL_INIT (1u << 8)
#define KS_OP_READ 0u
#define KS_OP_CREATE 1u
#define KS_OP_ERASE 2u
#define KS_OP_ERASE_ALL 3u
#define KS_OP_REVOKE 4u
#define KS_OP_LOCK 7u
#define KS_STS_IF (1u << 0)
#define KS_STS_EIF (1u << 1)
#define KS_STS_BUSY (1u << 2)
#define KS_STS_INITDONE (1u << 7)
#define KS_META_SEC (1u << 0)
#define KS_META_PRIV (1u << 1)
#define KS_META_READABLE (1u << 2)
#define KS_META_BS (1u << 4)
#define KS_META_SIZE_POS 8u
#define KS_META_OWNER_POS 16u
#define KS_META_NUMBER_POS 20u
#define KS_META_DST_POS 30u
#define KS_SIZE_256 6u
#define KS_OWNER_AES 0u
#define KS_OWNER_ECC 4u
#define KS_DST_SRAM 0u
#define KS_DST_FLASH 1u
#define KS_DST_OTP 2u
#define KS_OTP_SLOTS 15u
#define KS_OTP_ERASE_LIMIT 3u

/* CRYPTO (AHB0PERIPH_BASE + 0xA000), crypto_reg.h. ECC operands are 18 words each, least
 * significant word first. */
#define CRYPTO_BASE 0x4020A000u
#define CRPT_INTSTS 0x004u
#define CRPT_PRNG_CTL 0x008u
#define CRPT_PRNG_STS 0x030u
#define CRPT_AES_CTL 0x100u
#define CRPT_AES_STS 0x104u
#define CRPT_AES_DATIN 0x108u
#define CRPT_AES_DATOUT 0x10Cu
#define CRPT_ECC_CTL 0x800u
#define CRPT_ECC_STS 0x804u
#define CRPT_ECC_X1 0x808u
#define CRPT_ECC_Y1 0x850u
#define CRPT_ECC_X2 0x898u
#define CRPT_ECC_Y2 0x8E0u
#define CRPT_ECC_A 0x928u
#define CRPT_ECC_B 0x970u
#define CRPT_ECC_N 0x9B8u
#define CRPT_ECC_K 0xA00u
#define CRPT_ECC_OPERAND_WORDS 18u
#define CRPT_PRNG_KSCTL 0xF00u
#define CRPT_PRNG_KSSTS 0xF04u
#define CRPT_AES_KSCTL 0xF10u
#define CRPT_ECC_KSCTL 0xF40u
#define CRPT_ECC_KSSTS 0xF44u
#define CRPT_ECC_KSXY 0xF48u
#define CRPT_INTSTS_ECCIF (1u << 22)
#define CRPT_INTSTS_ECCEIF (1u << 23)
#define CRPT_PRNG_CTL_START (1u << 0)
#define CRPT_PRNG_CTL_KEYSZ_POS 2u
#define CRPT_PRNG_CTL_BUSY (1u << 8)
#define CRPT_PRNG_CTL_SEEDSRC (1u << 16)
#define CRPT_PRNG_KEYSZ_256 6u
#define CRPT_PRNG_STS_BUSY (1u << 0)
#define CRPT_PRNG_STS_KCTLERR (1u << 16)
#define CRPT_PRNG_STS_KSERR (1u << 17)
#define CRPT_PRNG_STS_TRNGERR (1u << 18)
#define CRPT_PRNG_KSCTL_TRUST (1u << 16)
#define CRPT_PRNG_KSCTL_ECDH (1u << 19)
#define CRPT_PRNG_KSCTL_ECDSA (1u << 20)
#define CRPT_PRNG_KSCTL_WDST (1u << 21)
#define CRPT_PRNG_KSCTL_WSDST_POS 22u
#define CRPT_PRNG_KSCTL_OWNER_POS 24u
#define CRPT_PRNG_KSSTS_KCTLERR (1u << 16)
#define CRPT_AES_CTL_START (1u << 0)
#define CRPT_AES_CTL_KEYSZ_POS 2u
#define CRPT_AES_CTL_OPMODE_POS 8u
#define CRPT_AES_CTL_ENCRYPTO (1u << 16)
#define CRPT_AES_CTL_OUTSWAP (1u << 22)
#define CRPT_AES_CTL_INSWAP (1u << 23)
#define CRPT_AES_KEYSZ_256 2u
#define CRPT_AES_MODE_ECB 0u
#define CRPT_AES_STS_BUSY (1u << 0)
#define CRPT_AES_STS_INBUFFULL (1u << 9)
#define CRPT_AES_STS_OUTBUFEMPTY (1u << 16)
#define CRPT_AES_STS_KSERR (1u << 21)
#define CRPT_AES_KSCTL_RSRC (1u << 5)
#define CRPT_AES_KSCTL_RSSRC_POS 6u
#define CRPT_ECC_CTL_START (1u << 0)
#define CRPT_ECC_CTL_ECDSAS (1u << 4)
#define CRPT_ECC_CTL_ECDSAR (1u << 5)
#define CRPT_ECC_CTL_FSEL (1u << 8)
#define CRPT_ECC_CTL_ECCOP_POS 9u
#define CRPT_ECC_CTL_MODOP_POS 11u
#define CRPT_ECC_CTL_CURVEM_POS 22u
#define CRPT_ECCOP_POINT_MUL 0u
#define CRPT_ECCOP_MODULE 1u
#define CRPT_ECCOP_POINT_ADD 2u
#define CRPT_ECCOP_POINT_DOUBLE 3u
#define CRPT_MODOP_DIV 0u
#define CRPT_MODOP_MUL 1u
#define CRPT_MODOP_ADD 2u
#define CRPT_MODOP_SUB 3u
#define CRPT_ECC_STS_BUSY (1u << 0)
#define CRPT_ECC_STS_DMABUSY (1u << 1)
#define CRPT_ECC_STS_KSERR (1u << 17)
#define CRPT_ECC_KSCTL_RSRCK (1u << 5)
#define CRPT_ECC_KSCTL_RSSRCK_POS 6u
#define CRPT_ECC_KSCTL_ECDH (1u << 14)
#define CRPT_ECC_KSCTL_WDST (1u << 21)
#define CRPT_ECC_KSCTL_WSDST_POS 22u
#define CRPT_ECC_KSCTL_OWNER_POS 24u
#define CRPT_ECC_KSXY_RSRCXY (1u << 5)
#define CRPT_ECC_KSXY_RSSRCX_POS 6u
#define CRPT_ECC_KSXY_NUMY_POS 8u
#define CRPT_ECC_KSXY_RSSRCY_POS 14u
#define CRPT_KS_NUM_MASK 0x1Fu

/* UART0 (APB0PERIPH_BASE + 0xD000), uart_reg.h. */
#define UART0_BASE 0x4024D000u
#define UART_DAT 0x00u
#define UART_LINE 0x0Cu
#define UART_FIFOSTS 0x18u
#define UART_LINE_WLS_8BIT 0x3u
#define UART_FIFOSTS_RXEMPTY (1u << 14)
#define UART_FIFOSTS_TXFULL (1u << 23)

#endif
