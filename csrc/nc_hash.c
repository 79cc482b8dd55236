/* SHA-256 (FIPS 180-4), HMAC (RFC 2104), HKDF (RFC 5869), CRC32 (IEEE 802.3). */
#include "nc_hash.h"

#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const uint8_t blk[64]) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | (uint32_t)blk[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void nc_sha256_init(nc_sha256_ctx *ctx) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->h, iv, sizeof iv);
    ctx->total = 0;
    ctx->buflen = 0;
}

void nc_sha256_update(nc_sha256_ctx *ctx, const uint8_t *data, size_t len) {
    ctx->total += len;
    if (ctx->buflen) {
        size_t take = 64 - ctx->buflen;
        if (take > len) take = len;
        memcpy(ctx->buf + ctx->buflen, data, take);
        ctx->buflen += take;
        data += take;
        len -= take;
        if (ctx->buflen < 64) return;
        compress(ctx->h, ctx->buf);
        ctx->buflen = 0;
    }
    while (len >= 64) {
        compress(ctx->h, data);
        data += 64;
        len -= 64;
    }
    if (len) {
        memcpy(ctx->buf, data, len);
        ctx->buflen = len;
    }
}

void nc_sha256_final(nc_sha256_ctx *ctx, uint8_t out[32]) {
    uint64_t bits = ctx->total * 8;
    uint8_t pad[72];
    size_t padlen = (ctx->buflen < 56) ? 56 - ctx->buflen : 120 - ctx->buflen;
    memset(pad, 0, sizeof pad);
    pad[0] = 0x80;
    for (int i = 0; i < 8; i++) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t total = ctx->total;
    nc_sha256_update(ctx, pad, padlen + 8);
    (void)total;
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(ctx->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(ctx->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(ctx->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)ctx->h[i];
    }
    nc_wipe(ctx, sizeof *ctx);
}

void nc_sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
    nc_sha256_ctx ctx;
    nc_sha256_init(&ctx);
    nc_sha256_update(&ctx, data, len);
    nc_sha256_final(&ctx, out);
}

void nc_sha256_batch(const uint8_t *msgs, size_t msglen, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) nc_sha256(msgs + i * msglen, msglen, out + 32 * i);
}

void nc_hmac_sha256_init(nc_hmac_ctx *ctx, const uint8_t *key, size_t keylen) {
    uint8_t k[64], pad[64];
    memset(k, 0, sizeof k);
    if (keylen > 64)
        nc_sha256(key, keylen, k);
    else if (keylen)
        memcpy(k, key, keylen);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    nc_sha256_init(&ctx->inner);
    nc_sha256_update(&ctx->inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    nc_sha256_init(&ctx->outer);
    nc_sha256_update(&ctx->outer, pad, 64);
    nc_wipe(k, sizeof k);
    nc_wipe(pad, sizeof pad);
}

void nc_hmac_sha256_update(nc_hmac_ctx *ctx, const uint8_t *data, size_t len) {
    nc_sha256_update(&ctx->inner, data, len);
}

void nc_hmac_sha256_final(nc_hmac_ctx *ctx, uint8_t out[32]) {
    uint8_t ih[32];
    nc_sha256_final(&ctx->inner, ih);
    nc_sha256_update(&ctx->outer, ih, 32);
    nc_sha256_final(&ctx->outer, out);
    nc_wipe(ih, sizeof ih);
}

void nc_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *data, size_t len,
                    uint8_t out[32]) {
    nc_hmac_ctx ctx;
    nc_hmac_sha256_init(&ctx, key, keylen);
    nc_hmac_sha256_update(&ctx, data, len);
    nc_hmac_sha256_final(&ctx, out);
}

int nc_hkdf_sha256(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                   const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen) {
    static const uint8_t zeros[32] = {0};
    uint8_t prk[32], t[32];
    if (outlen > 255 * 32) return -1;
    if (!salt || !saltlen) {
        salt = zeros;
        saltlen = 32;
    }
    nc_hmac_sha256(salt, saltlen, ikm, ikmlen, prk);
    size_t done = 0, tlen = 0;
    for (uint8_t ctr = 1; done < outlen; ctr++) {
        nc_hmac_ctx h;
        nc_hmac_sha256_init(&h, prk, 32);
        nc_hmac_sha256_update(&h, t, tlen);
        nc_hmac_sha256_update(&h, info, infolen);
        nc_hmac_sha256_update(&h, &ctr, 1);
        nc_hmac_sha256_final(&h, t);
        tlen = 32;
        size_t take = outlen - done < 32 ? outlen - done : 32;
        memcpy(out + done, t, take);
        done += take;
    }
    nc_wipe(prk, sizeof prk);
    nc_wipe(t, sizeof t);
    return 0;
}

uint32_t nc_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

int nc_ct_equal(const uint8_t *a, const uint8_t *b, size_t len) {
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++) diff |= (uint8_t)(a[i] ^ b[i]);
    return (int)(1 & ((uint32_t)(diff - 1) >> 8));
}

void nc_wipe(void *p, size_t len) {
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (len--) *v++ = 0;
}
