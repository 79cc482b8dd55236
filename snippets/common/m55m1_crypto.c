#include "m55m1_crypto.h"

#include "m55m1.h"
#include "m55m1_hw.h"

#define CRPT(off) REG32(CRYPTO_BASE + (off))
#define KS(off) REG32(KS_BASE + (off))

/* NIST P-256 (SEC 2), big-endian. */
static const uint8_t P256_P[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
static const uint8_t P256_A[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC};
static const uint8_t P256_B[32] = {0x5A, 0xC6, 0x35, 0xD8, 0xAA, 0x3A, 0x93, 0xE7, 0xB3, 0xEB, 0xBD,
                                   0x55, 0x76, 0x98, 0x86, 0xBC, 0x65, 0x1D, 0x06, 0xB0, 0xCC, 0x53,
                                   0xB0, 0xF6, 0x3B, 0xCE, 0x3C, 0x3E, 0x27, 0xD2, 0x60, 0x4B};
static const uint8_t P256_GX[32] = {0x6B, 0x17, 0xD1, 0xF2, 0xE1, 0x2C, 0x42, 0x47, 0xF8, 0xBC, 0xE6,
                                    0xE5, 0x63, 0xA4, 0x40, 0xF2, 0x77, 0x03, 0x7D, 0x81, 0x2D, 0xEB,
                                    0x33, 0xA0, 0xF4, 0xA1, 0x39, 0x45, 0xD8, 0x98, 0xC2, 0x96};
static const uint8_t P256_GY[32] = {0x4F, 0xE3, 0x42, 0xE2, 0xFE, 0x1A, 0x7F, 0x9B, 0x8E, 0xE7, 0xEB,
                                    0x4A, 0x7C, 0x0F, 0x9E, 0x16, 0x2B, 0xCE, 0x33, 0x57, 0x6B, 0x31,
                                    0x5E, 0xCE, 0xCB, 0xB6, 0x40, 0x68, 0x37, 0xBF, 0x51, 0xF5};
static const uint8_t P256_N[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17,
                                   0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};
static const uint8_t ZERO[32] = {0};
static const uint8_t ONE[32] = {[31] = 1};

/* 32-byte big-endian value -> operand register (least-significant word first, 18 words). */
static void put(uint32_t reg, const uint8_t v[32]) {
    for (uint32_t i = 0; i < CRPT_ECC_OPERAND_WORDS; i++) {
        uint32_t w = 0;
        if (i < 8u) {
            const uint8_t *p = v + 28u - 4u * i;
            w = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        }
        CRPT(reg + 4u * i) = w;
    }
}

static void get(uint32_t reg, uint8_t v[32]) {
    for (uint32_t i = 0; i < 8u; i++) {
        uint32_t w = CRPT(reg + 4u * i);
        uint8_t *p = v + 28u - 4u * i;
        p[0] = (uint8_t)(w >> 24);
        p[1] = (uint8_t)(w >> 16);
        p[2] = (uint8_t)(w >> 8);
        p[3] = (uint8_t)w;
    }
}

static int less_than(const uint8_t a[32], const uint8_t b[32]) {
    for (int i = 0; i < 32; i++) {
        if (a[i] != b[i]) return a[i] < b[i];
    }
    return 0;
}

static int is_zero(const uint8_t a[32]) {
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++) acc |= a[i];
    return acc == 0;
}

static int equal(const uint8_t a[32], const uint8_t b[32]) {
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++) acc |= (uint8_t)(a[i] ^ b[i]);
    return acc == 0;
}

/* Start one ECC operation and wait for BUSY to clear; KSERR and ECCEIF become errors. */
static int ecc_run(uint32_t op) {
    CRPT(CRPT_INTSTS) = CRPT_INTSTS_ECCIF | CRPT_INTSTS_ECCEIF; /* write 1 to clear */
    CRPT(CRPT_ECC_CTL) = CRPT_ECC_CTL_FSEL | (256u << CRPT_ECC_CTL_CURVEM_POS) | op | CRPT_ECC_CTL_START;
    if (hw_wait(CRYPTO_BASE + CRPT_ECC_STS, CRPT_ECC_STS_BUSY, 0) != 0) return CRYPTO_ERR_HW;
    if (CRPT(CRPT_ECC_STS) & CRPT_ECC_STS_KSERR) return CRYPTO_ERR_KS;
    if (CRPT(CRPT_INTSTS) & CRPT_INTSTS_ECCEIF) return CRYPTO_ERR_HW;
    return CRYPTO_OK;
}

#define OP_POINT_MUL (CRPT_ECCOP_POINT_MUL << CRPT_ECC_CTL_ECCOP_POS)
#define OP_POINT_ADD (CRPT_ECCOP_POINT_ADD << CRPT_ECC_CTL_ECCOP_POS)
#define OP_MOD(m) ((CRPT_ECCOP_MODULE << CRPT_ECC_CTL_ECCOP_POS) | ((uint32_t)(m) << CRPT_ECC_CTL_MODOP_POS))

/* The curve: A, B, N = p, (X1, Y1) = G, X2 = n (as the BSP sets it for a point multiplication). */
static void load_curve(void) {
    put(CRPT_ECC_A, P256_A);
    put(CRPT_ECC_B, P256_B);
    put(CRPT_ECC_N, P256_P);
    put(CRPT_ECC_X1, P256_GX);
    put(CRPT_ECC_Y1, P256_GY);
    put(CRPT_ECC_X2, P256_N);
    put(CRPT_ECC_K, ZERO);
}

/* out = x op y mod m (X1 = X1 op Y1). */
static int modop(uint32_t m, const uint8_t *mod, const uint8_t x[32], const uint8_t y[32], uint8_t out[32]) {
    put(CRPT_ECC_N, mod);
    put(CRPT_ECC_X1, x);
    put(CRPT_ECC_Y1, y);
    int rc = ecc_run(OP_MOD(m));
    if (rc == CRYPTO_OK) get(CRPT_ECC_X1, out);
    return rc;
}

static uint32_t ks_sel(uint32_t mem, uint32_t num) {
    return CRPT_ECC_KSCTL_RSRCK | (mem << CRPT_ECC_KSCTL_RSSRCK_POS) | (num & CRPT_KS_NUM_MASK);
}

int crypto_ks_erase_sram(uint32_t num) {
    KS(KS_METADATA) = (KS_DST_SRAM << KS_META_DST_POS) | (num << KS_META_NUMBER_POS);
    KS(KS_CTL) = (KS_OP_ERASE << KS_CTL_OPMODE_POS) | KS_CTL_START;
    if (hw_wait(KS_BASE + KS_STS, KS_STS_BUSY | KS_STS_IF, KS_STS_IF) != 0) return CRYPTO_ERR_HW;
    uint32_t sts = KS(KS_STS);
    KS(KS_STS) = KS_STS_IF | KS_STS_EIF;
    return (sts & KS_STS_EIF) ? CRYPTO_ERR_KS : CRYPTO_OK;
}

int crypto_prng_to_ks(uint32_t dst, uint32_t num, uint32_t owner, uint32_t usage, uint8_t *slot) {
    CRPT(CRPT_PRNG_KSCTL) = CRPT_PRNG_KSCTL_WDST | (dst << CRPT_PRNG_KSCTL_WSDST_POS) |
                            (owner << CRPT_PRNG_KSCTL_OWNER_POS) | CRPT_PRNG_KSCTL_TRUST | usage |
                            (num & CRPT_KS_NUM_MASK);
    CRPT(CRPT_PRNG_CTL) = CRPT_PRNG_CTL_SEEDSRC | (CRPT_PRNG_KEYSZ_256 << CRPT_PRNG_CTL_KEYSZ_POS) |
                          CRPT_PRNG_CTL_START;
    if (hw_wait(CRYPTO_BASE + CRPT_PRNG_CTL, CRPT_PRNG_CTL_BUSY, 0) != 0) return CRYPTO_ERR_HW;
    if (CRPT(CRPT_PRNG_STS) & (CRPT_PRNG_STS_KCTLERR | CRPT_PRNG_STS_KSERR | CRPT_PRNG_STS_TRNGERR))
        return CRYPTO_ERR_KS;
    uint32_t ksts = CRPT(CRPT_PRNG_KSSTS);
    if (ksts & CRPT_PRNG_KSSTS_KCTLERR) return CRYPTO_ERR_KS;
    *slot = (uint8_t)(ksts & CRPT_KS_NUM_MASK);
    return CRYPTO_OK;
}

int crypto_ecc_public_ks(uint32_t mem, uint32_t num, uint8_t pub[64]) {
    load_curve();
    CRPT(CRPT_ECC_KSCTL) = ks_sel(mem, num);
    int rc = ecc_run(OP_POINT_MUL);
    CRPT(CRPT_ECC_KSCTL) = 0;
    if (rc != CRYPTO_OK) return rc;
    get(CRPT_ECC_X1, pub);
    get(CRPT_ECC_Y1, pub + 32);
    return is_zero(pub) ? CRYPTO_ERR_KS : CRYPTO_OK;
}

int crypto_ecc_sign_ks(uint32_t mem, uint32_t num, const uint8_t digest[32], uint8_t sig[64]) {
    for (int attempt = 0; attempt < 4; attempt++) {
        uint8_t k;
        int rc = crypto_prng_to_ks(KS_DST_SRAM, 0, KS_OWNER_ECC, CRPT_PRNG_KSCTL_ECDSA, &k);
        if (rc != CRYPTO_OK) return rc;
        /* R = k x G, r = R.x mod n */
        load_curve();
        CRPT(CRPT_ECC_KSCTL) = ks_sel(KS_DST_SRAM, k);
        rc = ecc_run(OP_POINT_MUL | CRPT_ECC_CTL_ECDSAR);
        CRPT(CRPT_ECC_KSCTL) = 0;
        if (rc == CRYPTO_OK) {
            uint8_t rx[32];
            get(CRPT_ECC_X1, rx);
            rc = modop(CRPT_MODOP_ADD, P256_N, rx, ZERO, sig);
        }
        /* s = (e + r d) / k mod n, k and d never leaving the KeyStore */
        if (rc == CRYPTO_OK) {
            put(CRPT_ECC_N, P256_N);
            CRPT(CRPT_ECC_KSXY) = CRPT_ECC_KSXY_RSRCXY | (KS_DST_SRAM << CRPT_ECC_KSXY_RSSRCX_POS) | k |
                                  (mem << CRPT_ECC_KSXY_RSSRCY_POS) | ((num & CRPT_KS_NUM_MASK) << CRPT_ECC_KSXY_NUMY_POS);
            put(CRPT_ECC_X2, sig);
            put(CRPT_ECC_Y2, digest);
            rc = ecc_run(OP_MOD(CRPT_MODOP_DIV) | CRPT_ECC_CTL_ECDSAS);
            CRPT(CRPT_ECC_KSXY) = 0;
            if (rc == CRYPTO_OK) get(CRPT_ECC_X1, sig + 32);
        }
        int erc = crypto_ks_erase_sram(k); /* the nonce is used once */
        if (rc != CRYPTO_OK) return rc;
        if (erc != CRYPTO_OK) return erc;
        if (!is_zero(sig) && !is_zero(sig + 32)) return CRYPTO_OK;
    }
    return CRYPTO_ERR_HW;
}

int crypto_ecc_on_curve(const uint8_t pt[64]) {
    uint8_t y2[32], x2[32], x3[32], ax[32], rhs[32];
    if (!less_than(pt, P256_P) || !less_than(pt + 32, P256_P)) return CRYPTO_ERR_BAD;
    int rc = modop(CRPT_MODOP_MUL, P256_P, pt + 32, pt + 32, y2);
    if (rc == CRYPTO_OK) rc = modop(CRPT_MODOP_MUL, P256_P, pt, pt, x2);
    if (rc == CRYPTO_OK) rc = modop(CRPT_MODOP_MUL, P256_P, x2, pt, x3);
    if (rc == CRYPTO_OK) rc = modop(CRPT_MODOP_MUL, P256_P, P256_A, pt, ax);
    if (rc == CRYPTO_OK) rc = modop(CRPT_MODOP_ADD, P256_P, x3, ax, rhs);
    if (rc == CRYPTO_OK) rc = modop(CRPT_MODOP_ADD, P256_P, rhs, P256_B, rhs);
    if (rc != CRYPTO_OK) return rc;
    return equal(y2, rhs) ? CRYPTO_OK : CRYPTO_ERR_BAD;
}

int crypto_ecc_verify(const uint8_t pub[64], const uint8_t digest[32], const uint8_t sig[64]) {
    const uint8_t *r = sig, *s = sig + 32;
    uint8_t w[32], u1[32], u2[32], p1x[32], p1y[32], x[32];
    if (is_zero(r) || is_zero(s) || !less_than(r, P256_N) || !less_than(s, P256_N)) return CRYPTO_ERR_BAD;
    int rc = crypto_ecc_on_curve(pub);
    if (rc != CRYPTO_OK) return rc;
    rc = modop(CRPT_MODOP_DIV, P256_N, s, ONE, w); /* w = 1 / s */
    if (rc == CRYPTO_OK) rc = modop(CRPT_MODOP_MUL, P256_N, digest, w, u1);
    if (rc == CRYPTO_OK) rc = modop(CRPT_MODOP_MUL, P256_N, r, w, u2);
    if (rc != CRYPTO_OK) return rc;
    load_curve(); /* u1 x G */
    put(CRPT_ECC_K, u1);
    if ((rc = ecc_run(OP_POINT_MUL)) != CRYPTO_OK) return rc;
    get(CRPT_ECC_X1, p1x);
    get(CRPT_ECC_Y1, p1y);
    load_curve(); /* u2 x Q */
    put(CRPT_ECC_X1, pub);
    put(CRPT_ECC_Y1, pub + 32);
    put(CRPT_ECC_K, u2);
    if ((rc = ecc_run(OP_POINT_MUL)) != CRYPTO_OK) return rc;
    put(CRPT_ECC_X2, p1x); /* (X1, Y1) = u2 Q + u1 G */
    put(CRPT_ECC_Y2, p1y);
    if ((rc = ecc_run(OP_POINT_ADD)) != CRYPTO_OK) return rc;
    get(CRPT_ECC_X1, x);
    rc = modop(CRPT_MODOP_ADD, P256_N, x, ZERO, x);
    if (rc != CRYPTO_OK) return rc;
    return equal(x, r) ? CRYPTO_OK : CRYPTO_ERR_BAD;
}

int crypto_ecc_ecdh_ks(uint32_t mem, uint32_t num, const uint8_t peer[64], uint32_t owner, uint8_t *slot) {
    int rc = crypto_ecc_on_curve(peer); /* no invalid-curve point ever meets a KeyStore key */
    if (rc != CRYPTO_OK) return rc;
    load_curve();
    put(CRPT_ECC_X1, peer);
    put(CRPT_ECC_Y1, peer + 32);
    CRPT(CRPT_ECC_KSCTL) = ks_sel(mem, num) | CRPT_ECC_KSCTL_ECDH | CRPT_ECC_KSCTL_WDST |
                           (KS_DST_SRAM << CRPT_ECC_KSCTL_WSDST_POS) | (owner << CRPT_ECC_KSCTL_OWNER_POS);
    rc = ecc_run(OP_POINT_MUL);
    CRPT(CRPT_ECC_KSCTL) = 0;
    if (rc != CRYPTO_OK) return rc;
    *slot = (uint8_t)(CRPT(CRPT_ECC_KSSTS) & CRPT_KS_NUM_MASK);
    return CRYPTO_OK;
}

int crypto_aes256_ecb_ks(uint32_t mem, uint32_t num, const uint8_t in[16], uint8_t out[16]) {
    CRPT(CRPT_AES_KSCTL) = CRPT_AES_KSCTL_RSRC | (mem << CRPT_AES_KSCTL_RSSRC_POS) | (num & CRPT_KS_NUM_MASK);
    CRPT(CRPT_AES_CTL) = (CRPT_AES_KEYSZ_256 << CRPT_AES_CTL_KEYSZ_POS) |
                         (CRPT_AES_MODE_ECB << CRPT_AES_CTL_OPMODE_POS) | CRPT_AES_CTL_ENCRYPTO |
                         CRPT_AES_CTL_INSWAP | CRPT_AES_CTL_OUTSWAP | CRPT_AES_CTL_START;
    for (uint32_t i = 0; i < 16u; i += 4u) {
        if (hw_wait(CRYPTO_BASE + CRPT_AES_STS, CRPT_AES_STS_INBUFFULL, 0) != 0) return CRYPTO_ERR_HW;
        CRPT(CRPT_AES_DATIN) = (uint32_t)in[i] | (uint32_t)in[i + 1] << 8 | (uint32_t)in[i + 2] << 16 |
                               (uint32_t)in[i + 3] << 24;
    }
    if (hw_wait(CRYPTO_BASE + CRPT_AES_STS, CRPT_AES_STS_BUSY, 0) != 0) return CRYPTO_ERR_HW;
    if (CRPT(CRPT_AES_STS) & CRPT_AES_STS_KSERR) return CRYPTO_ERR_KS;
    for (uint32_t i = 0; i < 16u; i += 4u) {
        if (hw_wait(CRYPTO_BASE + CRPT_AES_STS, CRPT_AES_STS_OUTBUFEMPTY, 0) != 0) return CRYPTO_ERR_HW;
        uint32_t w = CRPT(CRPT_AES_DATOUT);
        out[i] = (uint8_t)w;
        out[i + 1] = (uint8_t)(w >> 8);
        out[i + 2] = (uint8_t)(w >> 16);
        out[i + 3] = (uint8_t)(w >> 24);
    }
    return CRYPTO_OK;
}
