/* P-256 and AES through the CRYPTO engine with keys selected from the KeyStore. Every function
 * returns 0 on success and a negative value when the engine reports an error. */
#ifndef HAL_CRYPTO_H
#define HAL_CRYPTO_H

#include <stdint.h>

#include "hal_ks.h"

/* Make a P-256 key pair; the private key goes into a fresh KS SRAM slot (*out). */
int hal_ecc_keygen_ks(hal_ks_key *out);
/* Public key X||Y (big-endian, 32+32) of a KS private key. */
int hal_ecc_public_ks(hal_ks_key key, uint8_t pub[64]);
/* ECDSA-P256 signature r||s over a 32-byte digest with a KS private key. */
int hal_ecc_sign_ks(hal_ks_key key, const uint8_t digest[32], uint8_t sig[64]);
/* ECDSA-P256 verification; 0 when valid, -1 when not (or on engine error). */
int hal_ecc_verify(const uint8_t pub[64], const uint8_t digest[32], const uint8_t sig[64]);
/* ECDH: x-coordinate of priv * peer, written by the engine into a fresh KS SRAM slot (*out),
 * usable as an AES-256 key. -2 when the peer point is not on the curve. */
int hal_ecc_ecdh_ks(hal_ks_key priv, const uint8_t peer[64], hal_ks_key *out);
/* One AES-256-ECB block with a KS key. */
int hal_aes256_ecb_ks(hal_ks_key key, const uint8_t in[16], uint8_t out[16]);

#endif
