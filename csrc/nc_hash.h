/* SHA-256, HMAC-SHA256, HKDF-SHA256 (RFC 5869), CRC32 (IEEE) and constant-time compare.
 * Portable C99, no allocation, no libc beyond <stdint.h>/<stddef.h>/<string.h>, so the same
 * file builds for the host (cffi) and for Cortex-M (arm-none-eabi-gcc). */
#ifndef NC_HASH_H
#define NC_HASH_H

#include <stddef.h>
#include <stdint.h>

#define NC_SHA256_LEN 32

typedef struct {
    uint32_t h[8];
    uint64_t total;   /* bytes hashed so far */
    uint8_t buf[64];
    size_t buflen;
} nc_sha256_ctx;

void nc_sha256_init(nc_sha256_ctx *ctx);
void nc_sha256_update(nc_sha256_ctx *ctx, const uint8_t *data, size_t len);
void nc_sha256_final(nc_sha256_ctx *ctx, uint8_t out[32]);
void nc_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
/* n messages of msglen bytes each, contiguous; n 32-byte digests out. */
void nc_sha256_batch(const uint8_t *msgs, size_t msglen, size_t n, uint8_t *out);

typedef struct {
    nc_sha256_ctx inner;
    nc_sha256_ctx outer;
} nc_hmac_ctx;

void nc_hmac_sha256_init(nc_hmac_ctx *ctx, const uint8_t *key, size_t keylen);
void nc_hmac_sha256_update(nc_hmac_ctx *ctx, const uint8_t *data, size_t len);
void nc_hmac_sha256_final(nc_hmac_ctx *ctx, uint8_t out[32]);
void nc_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *data, size_t len,
                    uint8_t out[32]);

/* HKDF-SHA256. Returns 0 on success, -1 if outlen > 255*32. */
int nc_hkdf_sha256(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                   const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen);

uint32_t nc_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* 1 when equal, 0 otherwise; time depends only on len. */
int nc_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Best-effort wipe that the compiler may not elide. */
void nc_wipe(void *p, size_t len);

#endif
