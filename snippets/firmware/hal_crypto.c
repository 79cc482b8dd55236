#include "hal_crypto.h"

#include "fw_regs.h"
#include "m55m1_crypto.h"

/* The firmware's names for the shared engine code (snippets/common/m55m1_crypto.c). */

int hal_ecc_keygen_ks(hal_ks_key *out) {
    uint8_t slot;
    if (crypto_prng_to_ks(KS_DST_SRAM, 0, KS_OWNER_ECC, CRPT_PRNG_KSCTL_ECDH, &slot) != CRYPTO_OK) return -1;
    out->mem = HAL_KS_SRAM;
    out->num = slot;
    return 0;
}

int hal_ecc_public_ks(hal_ks_key key, uint8_t pub[64]) {
    return crypto_ecc_public_ks(key.mem, key.num, pub) == CRYPTO_OK ? 0 : -1;
}

int hal_ecc_sign_ks(hal_ks_key key, const uint8_t digest[32], uint8_t sig[64]) {
    return crypto_ecc_sign_ks(key.mem, key.num, digest, sig) == CRYPTO_OK ? 0 : -1;
}

int hal_ecc_verify(const uint8_t pub[64], const uint8_t digest[32], const uint8_t sig[64]) {
    return crypto_ecc_verify(pub, digest, sig) == CRYPTO_OK ? 0 : -1;
}

int hal_ecc_ecdh_ks(hal_ks_key priv, const uint8_t peer[64], hal_ks_key *out) {
    uint8_t slot;
    int rc = crypto_ecc_ecdh_ks(priv.mem, priv.num, peer, KS_OWNER_AES, &slot);
    if (rc == CRYPTO_ERR_BAD) return -2;
    if (rc != CRYPTO_OK) return -1;
    out->mem = HAL_KS_SRAM;
    out->num = slot;
    return 0;
}

int hal_aes256_ecb_ks(hal_ks_key key, const uint8_t in[16], uint8_t out[16]) {
    return crypto_aes256_ecb_ks(key.mem, key.num, in, out) == CRYPTO_OK ? 0 : -1;
}
