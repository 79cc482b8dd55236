/* Reference NuBL2: the first-stage bootloader of the NuSec boot chain (mask ROM -> NuBL2 -> app).
 *
 * The mask ROM has verified this image with the root key in KeyStore OTP slots 0/1 before it got
 * here. NuBL2 verifies the MCUboot application at APP_BASE against SecureBoot_PUB, the P-256 key
 * in OTP entries 17-24, the way the host checks it before burning (nusec/provision/firmware.py):
 * SHA-256 over header, body and protected TLVs equal to the SHA256 TLV; the KEYHASH TLV, when
 * present, equal to SHA-256 of the key's DER SubjectPublicKeyInfo; the ECDSA-P256 signature TLV
 * valid (checked on the CRYPTO engine). Then it points VTOR at the application's vector table,
 * loads its MSP and jumps. On any refusal it sends the BOOT_FAIL frame (docs/board-protocol.md)
 * on UART0 with the reason, and answers every later frame with it. */
#include <stddef.h>
#include <stdint.h>

#include "m55m1.h"
#include "m55m1_crypto.h"
#include "m55m1_hw.h"
#include "nc_hash.h"
#include "nusec_layout.h"

#define SCB_VTOR 0xE000ED08u
#define IMAGE_MAGIC 0x96F3B83Du
#define TLV_INFO_MAGIC 0x6907u
#define TLV_PROT_INFO_MAGIC 0x6908u
#define TLV_KEYHASH 0x01u
#define TLV_SHA256 0x10u
#define TLV_ECDSA_SIG 0x22u

/* BootFailReason (nuboard/protocol.py). */
enum {
    R_NO_ROTPK = 0x01,
    R_NO_IMAGE = 0x02,
    R_BAD_HEADER = 0x03,
    R_BAD_TLV = 0x04,
    R_BAD_HASH = 0x05,
    R_NO_SIGNATURE = 0x06,
    R_BAD_SIGNATURE = 0x07,
    R_BAD_VECTORS = 0x08,
    R_BAD_KEYHASH = 0x09,
};

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
void Reset_Handler(void);
void Fault_Handler(void);

/* SubjectPublicKeyInfo DER of a P-256 key, up to the 65-byte point (RFC 5480). */
static const uint8_t SPKI_PREFIX[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48,
                                        0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A, 0x86, 0x48,
                                        0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }

static void uart_put(const uint8_t *p, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (hw_wait(UART0_BASE + UART_FIFOSTS, UART_FIFOSTS_TXFULL, 0) != 0) return;
        REG32(UART0_BASE + UART_DAT) = p[i];
    }
}

static void boot_fail_frame(uint8_t reason) {
    uint8_t frame[10] = {0xA5, 0xFE, 0x02, 0x00, 0x20, reason};
    uint32_t crc = nc_crc32(0, frame + 1, 5);
    for (int i = 0; i < 4; i++) frame[6 + i] = (uint8_t)(crc >> (8 * i));
    uart_put(frame, sizeof frame);
}

/* Refuse: say why, then answer every frame (every start byte after an idle line) with it. */
static void __attribute__((noreturn)) refuse(uint8_t reason) {
    boot_fail_frame(reason);
    for (;;) {
        if (REG32(UART0_BASE + UART_FIFOSTS) & UART_FIFOSTS_RXEMPTY) continue;
        if ((REG32(UART0_BASE + UART_DAT) & 0xFFu) != 0xA5u) continue;
        for (uint32_t idle = 0; idle < 2000u;) { /* swallow the rest of the request */
            if (REG32(UART0_BASE + UART_FIFOSTS) & UART_FIFOSTS_RXEMPTY) {
                idle++;
            } else {
                (void)REG32(UART0_BASE + UART_DAT);
                idle = 0;
            }
        }
        boot_fail_frame(reason);
    }
}

/* OTP entries through FMC ISP READ: ISP clock on, protected registers unlocked, ISPGO polled. */
static int otp_read(uint32_t entry, uint8_t *out, uint32_t len) {
    int rc = 0;
    hw_clock_on(CLK_FMCCTL, CLK_FMCCTL_ISP0CKEN);
    if (hw_unlock() != 0) return -1;
    REG32(FMC_BASE + FMC_ISPCTL) |= FMC_ISPCTL_ISPEN;
    for (uint32_t off = 0; off < len && rc == 0; off += 4u) {
        REG32(FMC_BASE + FMC_ISPCMD) = FMC_CMD_READ;
        REG32(FMC_BASE + FMC_ISPADDR) = FMC_OTP_BASE + entry * 8u + off;
        REG32(FMC_BASE + FMC_ISPTRG) = FMC_ISPTRG_ISPGO;
        if (hw_wait(FMC_BASE + FMC_ISPTRG, FMC_ISPTRG_ISPGO, 0) != 0 ||
            (REG32(FMC_BASE + FMC_ISPCTL) & FMC_ISPCTL_ISPFF)) {
            rc = -1;
        } else {
            uint32_t w = REG32(FMC_BASE + FMC_ISPDAT);
            for (int i = 0; i < 4; i++) out[off + (uint32_t)i] = (uint8_t)(w >> (8 * i));
        }
    }
    hw_lock();
    return rc;
}

/* DER ECDSA-Sig-Value -> r||s (32 bytes each); 0 on success. */
static int der_int(const uint8_t **p, const uint8_t *end, uint8_t out[32]) {
    if (end - *p < 2 || (*p)[0] != 0x02) return -1;
    uint32_t n = (*p)[1];
    const uint8_t *v = *p + 2;
    if (n == 0 || n > 33 || (uint32_t)(end - v) < n) return -1;
    *p = v + n;
    while (n > 32 && *v == 0) {
        v++;
        n--;
    }
    if (n > 32) return -1;
    for (uint32_t i = 0; i < 32; i++) out[i] = i < 32 - n ? 0 : v[i - (32 - n)];
    return 0;
}

static int der_signature(const uint8_t *der, uint32_t len, uint8_t sig[64]) {
    if (len < 8 || der[0] != 0x30 || der[1] != len - 2) return -1;
    const uint8_t *p = der + 2, *end = der + len;
    if (der_int(&p, end, sig) != 0 || der_int(&p, end, sig + 32) != 0) return -1;
    return p == end ? 0 : -1;
}

static int equal(const uint8_t *a, const uint8_t *b, uint32_t n) {
    uint8_t acc = 0;
    for (uint32_t i = 0; i < n; i++) acc |= (uint8_t)(a[i] ^ b[i]);
    return acc == 0;
}

/* Check the application; returns 0 and its reset vector/MSP, or a BootFailReason. */
static int verify_app(uint32_t *pc, uint32_t *sp) {
    const uint8_t *img = (const uint8_t *)APP_BASE;
    uint8_t rotpk[64], digest[32], keyhash[32], sig[64];
    if (otp_read(OTP_SECURE_BOOT_PUB_ENTRY, rotpk, sizeof rotpk) != 0) return R_NO_ROTPK;
    uint8_t all = 0xFF;
    for (int i = 0; i < 64; i++) all &= rotpk[i];
    if (all == 0xFF) return R_NO_ROTPK;
    if (rd32(img) != IMAGE_MAGIC) return R_NO_IMAGE;
    uint32_t hdr = rd16(img + 8), prot = rd16(img + 10), size = rd32(img + 12), flags = rd32(img + 16);
    if (hdr < 32u || (hdr & 3u) || flags != 0) return R_BAD_HEADER;
    uint32_t body_end = hdr + size;
    if (size < 8u || size > APP_SLOT_SIZE || body_end + prot + 4u > APP_SLOT_SIZE) return R_BAD_HEADER;
    uint32_t signed_end = body_end;
    if (prot) {
        if (rd16(img + body_end) != TLV_PROT_INFO_MAGIC || rd16(img + body_end + 2) != prot) return R_BAD_TLV;
        signed_end += prot;
    }
    if (rd16(img + signed_end) != TLV_INFO_MAGIC) return R_BAD_TLV;
    uint32_t tlv_end = signed_end + rd16(img + signed_end + 2);
    if (tlv_end > APP_SLOT_SIZE || tlv_end < signed_end + 4u) return R_BAD_TLV;
    const uint8_t *hash_tlv = NULL, *keyhash_tlv = NULL, *sig_tlv = NULL;
    uint32_t sig_len = 0;
    for (uint32_t off = signed_end + 4u; off < tlv_end;) {
        if (off + 4u > tlv_end) return R_BAD_TLV;
        uint32_t kind = rd16(img + off), len = rd16(img + off + 2);
        if (off + 4u + len > tlv_end) return R_BAD_TLV;
        if (kind == TLV_SHA256 && len == 32u && !hash_tlv) hash_tlv = img + off + 4;
        if (kind == TLV_KEYHASH && len == 32u && !keyhash_tlv) keyhash_tlv = img + off + 4;
        if (kind == TLV_ECDSA_SIG && !sig_tlv) {
            sig_tlv = img + off + 4;
            sig_len = len;
        }
        off += 4u + len;
    }
    nc_sha256(img, signed_end, digest);
    if (!hash_tlv || !equal(hash_tlv, digest, 32)) return R_BAD_HASH;
    if (keyhash_tlv) {
        static const uint8_t point_prefix = 0x04;
        nc_sha256_ctx ctx;
        nc_sha256_init(&ctx);
        nc_sha256_update(&ctx, SPKI_PREFIX, sizeof SPKI_PREFIX);
        nc_sha256_update(&ctx, &point_prefix, 1);
        nc_sha256_update(&ctx, rotpk, sizeof rotpk);
        nc_sha256_final(&ctx, keyhash);
        if (!equal(keyhash_tlv, keyhash, 32)) return R_BAD_KEYHASH;
    }
    if (!sig_tlv) return R_NO_SIGNATURE;
    if (der_signature(sig_tlv, sig_len, sig) != 0) return R_BAD_SIGNATURE;
    if (crypto_ecc_verify(rotpk, digest, sig) != CRYPTO_OK) return R_BAD_SIGNATURE;
    *sp = rd32(img + hdr);
    *pc = rd32(img + hdr + 4);
    if (!(*pc & 1u) || (*pc & ~1u) < APP_BASE + hdr || (*pc & ~1u) >= APP_BASE + body_end) return R_BAD_VECTORS;
    if (*sp <= 0x20000000u || *sp > 0x20200000u) return R_BAD_VECTORS;
    REG32(SCB_VTOR) = APP_BASE + hdr;
    return 0;
}

static void __attribute__((noreturn)) start_app(uint32_t sp, uint32_t pc) {
    __asm volatile("msr msp, %0\n"
                   "bx %1\n" ::"r"(sp),
                   "r"(pc));
    __builtin_unreachable();
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    hw_clock_on(CLK_UARTCTL, CLK_UARTCTL_UART0CKEN);
    hw_clock_on(CLK_CRYPTOCTL, CLK_CRYPTOCTL_CRYPTO0CKEN);
    REG32(UART0_BASE + UART_LINE) = UART_LINE_WLS_8BIT;
    uint32_t pc = 0, sp = 0;
    int reason = verify_app(&pc, &sp);
    if (reason != 0) refuse((uint8_t)reason);
    start_app(sp, pc);
}

void Fault_Handler(void) {
    for (;;) {
        __asm volatile("bkpt #0xFB");
    }
}

__attribute__((section(".isr_vector"), used)) void (*const vector_table[16])(void) = {
    (void (*)(void))(uintptr_t)&_estack,
    Reset_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    0, 0, 0,
    Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
