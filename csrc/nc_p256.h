/* P-256 (secp256r1): keys, ECDSA (RFC 6979, optionally hedged), ECDH, SEC1 and DER encodings,
 * plus batch calls and per-public-key precomputed tables.
 *
 * Portable C99: 64-bit limbs with unsigned __int128 when the compiler has it, otherwise (or with
 * -DNC_P256_LIMB32) 32-bit limbs, so the same file builds for Cortex-M. Every operation on a
 * secret (private scalar, nonce, seed) is constant time: no secret-dependent branch or memory
 * index; precomputed tables are read with full masked scans.
 *
 * Byte conventions: scalars and coordinates are 32-byte big-endian; public keys passed to the
 * batch calls are SEC1 uncompressed (65 bytes, 0x04||X||Y); signatures are raw r||s (64 bytes)
 * unless the name says DER. Return codes: 0 = ok, negative = the NC_P256_E* reason below. */
#ifndef NC_P256_H
#define NC_P256_H

#include <stddef.h>
#include <stdint.h>

#define NC_P256_OK 0
#define NC_P256_EPOINT (-1)  /* public key: bad encoding, coordinate >= p, not on the curve */
#define NC_P256_ESCALAR (-2) /* private scalar not in [1, n-1] */
/* (-3) was NC_P256_EDER: DER signatures are encoded in Python, by cryptography (nucore.p256). */
#define NC_P256_EARG (-4)    /* bad length or argument */
#define NC_P256_ESIG (-5)    /* signature does not verify */

/* Which field multiplication this build picked when it loaded: "adx" (x86-64 BMI2+ADX asm) or
 * "portable" (C). NUSEC_P256_FIELD=portable in the environment forces the C path. */
const char *nc_p256_field_backend(void);

/* Seed -> private scalar: candidate_i = HKDF-SHA256(salt = "NuSec P-256 keygen v1", ikm = seed,
 * info = one byte i, L = 32) for i = 0, 1, ...; the first candidate in [1, n-1] is the key
 * (rejection sampling, so the scalar is exactly uniform when the seed is). */
int nc_p256_scalar_from_seed(const uint8_t seed[32], uint8_t priv[32]);
/* 1 when 1 <= priv < n. */
int nc_p256_scalar_is_valid(const uint8_t priv[32]);
int nc_p256_keygen(const uint8_t seed[32], uint8_t priv[32], uint8_t pub[65]);
int nc_p256_public_key(const uint8_t priv[32], uint8_t pub[65]);

/* SEC1 decode (33 or 65 bytes) with full validation; out is uncompressed. */
int nc_p256_point_decode(const uint8_t *in, size_t inlen, uint8_t out[65]);
/* Validate an uncompressed key and write its 33-byte compressed form. */
int nc_p256_point_compress(const uint8_t pub[65], uint8_t out[33]);

/* ECDSA over a 32-byte digest. extra (may be NULL/0) is RFC 6979 section 3.6 additional data. */
int nc_p256_sign(const uint8_t priv[32], const uint8_t digest[32], const uint8_t *extra,
                 size_t extralen, uint8_t sig[64]);
/* NC_P256_OK when valid, NC_P256_ESIG when not, NC_P256_EPOINT for a bad key. */
int nc_p256_verify(const uint8_t pub[65], const uint8_t digest[32], const uint8_t sig[64]);
int nc_p256_ecdh(const uint8_t priv[32], const uint8_t pub[65], uint8_t secret[32]);

/* Batch calls: n items on contiguous buffers. A stride of 0 for priv/pub reuses one item for all.
 * status (n bytes, may be NULL for keygen) receives 0 per good item or the positive error code.
 * The return value is the number of failed items (0 = all good). */
size_t nc_p256_keygen_batch(const uint8_t *seeds, size_t n, uint8_t *privs, uint8_t *pubs);
size_t nc_p256_sign_batch(const uint8_t *privs, size_t priv_stride, const uint8_t *digests,
                          const uint8_t *extra, size_t extralen, size_t n, uint8_t *sigs,
                          uint8_t *status);
size_t nc_p256_verify_batch(const uint8_t *pubs, size_t pub_stride, const uint8_t *digests,
                            const uint8_t *sigs, size_t n, uint8_t *status);
size_t nc_p256_ecdh_batch(const uint8_t *privs, size_t priv_stride, const uint8_t *pubs,
                          size_t pub_stride, size_t n, uint8_t *secrets, uint8_t *status);

/* A precomputed fixed-base table for one public key (size bytes, 8-byte aligned buffer), so
 * N ECDH or N verifications against that key become fixed-base multiplications. */
size_t nc_p256_table_size(void);
int nc_p256_table_init(void *table, const uint8_t pub[65]);
size_t nc_p256_ecdh_fixed_batch(const void *table, const uint8_t *privs, size_t n,
                                uint8_t *secrets, uint8_t *status);
size_t nc_p256_verify_fixed_batch(const void *table, const uint8_t *digests, const uint8_t *sigs,
                                  size_t n, uint8_t *status);

#endif
