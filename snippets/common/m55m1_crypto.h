/* ECDSA, ECDH, key generation and AES-256-ECB on the M55M1 CRYPTO engine, with keys held in the
 * KeyStore, done the way the silicon needs it: PRNG -> KeyStore for keys and signing nonces,
 * point and modular operations through ECC_CTL.ECCOP, operands least-significant word first,
 * busy bits polled with a bound. At this API every 256-bit value is a 32-byte big-endian string
 * and a point is X||Y (64 bytes). The caller enables the CRYPTO/KS/TRNG clocks and initialises
 * the KeyStore first. */
#ifndef M55M1_CRYPTO_H
#define M55M1_CRYPTO_H

#include <stdint.h>

#define CRYPTO_OK 0
#define CRYPTO_ERR_KS (-1)  /* KeyStore refused (empty slot, wrong owner, full, KCTLERR) */
#define CRYPTO_ERR_HW (-2)  /* an engine did not finish (timeout) or flagged an error */
#define CRYPTO_ERR_BAD (-3) /* a signature that does not verify, a point not on the curve */

/* A random key from the PRNG straight into the KeyStore (usage: 0, CRPT_PRNG_KSCTL_ECDSA or
 * CRPT_PRNG_KSCTL_ECDH; the last two go to KS SRAM only). *slot: where it landed. */
int crypto_prng_to_ks(uint32_t dst, uint32_t num, uint32_t owner, uint32_t usage, uint8_t *slot);
/* Public key d x G of the KS key (mem, num). */
int crypto_ecc_public_ks(uint32_t mem, uint32_t num, uint8_t pub[64]);
/* ECDSA P-256 over a SHA-256 digest with the KS key (mem, num); the nonce is a fresh PRNG key in
 * KS SRAM, erased afterwards. sig = r||s. */
int crypto_ecc_sign_ks(uint32_t mem, uint32_t num, const uint8_t digest[32], uint8_t sig[64]);
/* ECDSA P-256 verification; CRYPTO_OK when valid, CRYPTO_ERR_BAD when not. */
int crypto_ecc_verify(const uint8_t pub[64], const uint8_t digest[32], const uint8_t sig[64]);
/* CRYPTO_OK when pt is a point of P-256 (coordinates below p, on the curve). */
int crypto_ecc_on_curve(const uint8_t pt[64]);
/* ECDH: x of (KS key) x peer into a new KS SRAM key of `owner`; *slot: its number. */
int crypto_ecc_ecdh_ks(uint32_t mem, uint32_t num, const uint8_t peer[64], uint32_t owner, uint8_t *slot);
/* One AES-256-ECB encryption with the KS key (mem, num). */
int crypto_aes256_ecb_ks(uint32_t mem, uint32_t num, const uint8_t in[16], uint8_t out[16]);
/* Erase one KS SRAM key (an ephemeral or a nonce). */
int crypto_ks_erase_sram(uint32_t num);

#endif
