#include "hal_crypto.h"

#include <string.h>

#include "fw_regs.h"

#define CRPT(off) REG32(CRYPTO_BASE + (off))

/* 32-byte big-endian operand <-> register words, in memory order (memcpy on a little-endian
 * core), done word by word so the bus sees 32-bit accesses only. */
static void put_operand(uint32_t reg, const uint8_t in[32]) {
    for (uint32_t i = 0; i < 32u; i += 4u) {
        uint32_t w;
        memcpy(&w, in + i, 4);
        CRPT(reg + i) = w;
    }
}

static void get_operand(uint32_t reg, uint8_t out[32]) {
    for (uint32_t i = 0; i < 32u; i += 4u) {
        uint32_t w = CRPT(reg + i);
        memcpy(out + i, &w, 4);
    }
}

static uint32_t ksctl(hal_ks_key key) {
    return CRPT_KSCTL_RSRC | ((uint32_t)key.mem << CRPT_KSCTL_MEM_POS) | (key.num & 0x3Fu);
}

/* Start an ECC operation and wait; returns ECC_STS. */
static uint32_t ecc_run(uint32_t op) {
    CRPT(CRPT_ECC_CTL) = (op << CRPT_ECC_OP_POS) | CRPT_CTL_START;
    uint32_t sts;
    while (!((sts = CRPT(CRPT_ECC_STS)) & CRPT_STS_DONE)) {
    }
    return sts;
}

#define ECC_FAILED(sts) ((sts) & (CRPT_STS_KSERR | CRPT_STS_ERR | CRPT_STS_VFAIL))

int hal_ecc_keygen_ks(hal_ks_key *out) {
    CRPT(CRPT_ECC_KSMETA) = hal_ks_meta(HAL_KS_SRAM, 0, KS_OWNER_ECC);
    if (ECC_FAILED(ecc_run(ECC_OP_KEYGEN))) return -1;
    out->mem = HAL_KS_SRAM;
    out->num = (uint8_t)CRPT(CRPT_ECC_KSNUM);
    return 0;
}

int hal_ecc_public_ks(hal_ks_key key, uint8_t pub[64]) {
    CRPT(CRPT_ECC_KSCTL) = ksctl(key);
    if (ECC_FAILED(ecc_run(ECC_OP_PUBKEY))) return -1;
    get_operand(CRPT_ECC_X1, pub);
    get_operand(CRPT_ECC_Y1, pub + 32);
    return 0;
}

int hal_ecc_sign_ks(hal_ks_key key, const uint8_t digest[32], uint8_t sig[64]) {
    CRPT(CRPT_ECC_KSCTL) = ksctl(key);
    put_operand(CRPT_ECC_K, digest);
    if (ECC_FAILED(ecc_run(ECC_OP_SIGN))) return -1;
    get_operand(CRPT_ECC_X2, sig);
    get_operand(CRPT_ECC_Y2, sig + 32);
    return 0;
}

int hal_ecc_verify(const uint8_t pub[64], const uint8_t digest[32], const uint8_t sig[64]) {
    put_operand(CRPT_ECC_X1, pub);
    put_operand(CRPT_ECC_Y1, pub + 32);
    put_operand(CRPT_ECC_X2, sig);
    put_operand(CRPT_ECC_Y2, sig + 32);
    put_operand(CRPT_ECC_K, digest);
    return ECC_FAILED(ecc_run(ECC_OP_VERIFY)) ? -1 : 0;
}

int hal_ecc_ecdh_ks(hal_ks_key priv, const uint8_t peer[64], hal_ks_key *out) {
    CRPT(CRPT_ECC_KSCTL) = ksctl(priv) | CRPT_KSCTL_WDST;
    CRPT(CRPT_ECC_KSMETA) = hal_ks_meta(HAL_KS_SRAM, 0, KS_OWNER_AES);
    put_operand(CRPT_ECC_X1, peer);
    put_operand(CRPT_ECC_Y1, peer + 32);
    uint32_t sts = ecc_run(ECC_OP_ECDH);
    if (sts & CRPT_STS_ERR) return -2; /* peer point not on the curve */
    if (ECC_FAILED(sts)) return -1;
    out->mem = HAL_KS_SRAM;
    out->num = (uint8_t)CRPT(CRPT_ECC_KSNUM);
    return 0;
}

int hal_aes256_ecb_ks(hal_ks_key key, const uint8_t in[16], uint8_t out[16]) {
    CRPT(CRPT_AES_KSCTL) = ksctl(key);
    for (uint32_t i = 0; i < 16u; i += 4u) {
        uint32_t w;
        memcpy(&w, in + i, 4);
        CRPT(CRPT_AES_DATIN + i) = w;
    }
    CRPT(CRPT_AES_CTL) = CRPT_AES_CTL_ENCRYPT | CRPT_CTL_START;
    uint32_t sts;
    while (!((sts = CRPT(CRPT_AES_STS)) & CRPT_STS_DONE)) {
    }
    if (sts & (CRPT_STS_KSERR | CRPT_STS_ERR)) return -1;
    for (uint32_t i = 0; i < 16u; i += 4u) {
        uint32_t w = CRPT(CRPT_AES_DATOUT + i);
        memcpy(out + i, &w, 4);
    }
    return 0;
}
