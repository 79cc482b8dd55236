/* AES-256 and RFC 5649 key wrap with padding. See nc_kw.h for why this exists. */
#include "nc_kw.h"

#include <string.h>

#include "nc_hash.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define NC_KW_HAVE_AESNI 1
#include <immintrin.h>
#else
#define NC_KW_HAVE_AESNI 0
#endif

static int g_force_portable = 0;

/* ---- portable, table-free AES-256 (constant time: no secret-dependent branch or index) ---- */

static uint8_t xtime(uint8_t a) { return (uint8_t)((a << 1) ^ (0x1B & (uint8_t)-(a >> 7))); }

static uint8_t gf_mul(uint8_t a, uint8_t b) {
    uint8_t r = 0;
    for (int i = 0; i < 8; i++) {
        r ^= (uint8_t)(a & (uint8_t)-(b & 1));
        a = xtime(a);
        b >>= 1;
    }
    return r;
}

static uint8_t sbox(uint8_t x) {
    uint8_t y = x; /* x^254 = inverse (0 -> 0) */
    for (int i = 0; i < 6; i++) y = gf_mul(gf_mul(y, y), x);
    y = gf_mul(y, y);
    uint8_t s = y;
    for (int i = 1; i <= 4; i++) s ^= (uint8_t)((y << i) | (y >> (8 - i)));
    return (uint8_t)(s ^ 0x63);
}

static void expand_portable(const uint8_t key[32], uint8_t rk[240]) {
    uint8_t rcon = 1;
    memcpy(rk, key, 32);
    for (int i = 8; i < 60; i++) {
        uint8_t t[4];
        memcpy(t, rk + 4 * (i - 1), 4);
        if (i % 8 == 0) {
            uint8_t t0 = t[0];
            t[0] = (uint8_t)(sbox(t[1]) ^ rcon);
            t[1] = sbox(t[2]);
            t[2] = sbox(t[3]);
            t[3] = sbox(t0);
            rcon = xtime(rcon);
        } else if (i % 8 == 4) {
            for (int j = 0; j < 4; j++) t[j] = sbox(t[j]);
        }
        for (int j = 0; j < 4; j++) rk[4 * i + j] = (uint8_t)(rk[4 * (i - 8) + j] ^ t[j]);
    }
}

static void encrypt_portable(const uint8_t rk[240], const uint8_t in[16], uint8_t out[16]) {
    uint8_t s[16], t[16];
    for (int i = 0; i < 16; i++) s[i] = (uint8_t)(in[i] ^ rk[i]);
    for (int round = 1; round <= 14; round++) {
        for (int i = 0; i < 16; i++) s[i] = sbox(s[i]);
        for (int c = 0; c < 4; c++) /* ShiftRows: row r moves left by r */
            for (int r = 0; r < 4; r++) t[4 * c + r] = s[4 * ((c + r) % 4) + r];
        if (round != 14) {
            for (int c = 0; c < 4; c++) {
                uint8_t *col = t + 4 * c, a0 = col[0], a1 = col[1], a2 = col[2], a3 = col[3];
                uint8_t all = (uint8_t)(a0 ^ a1 ^ a2 ^ a3);
                col[0] = (uint8_t)(a0 ^ all ^ xtime((uint8_t)(a0 ^ a1)));
                col[1] = (uint8_t)(a1 ^ all ^ xtime((uint8_t)(a1 ^ a2)));
                col[2] = (uint8_t)(a2 ^ all ^ xtime((uint8_t)(a2 ^ a3)));
                col[3] = (uint8_t)(a3 ^ all ^ xtime((uint8_t)(a3 ^ a0)));
            }
        }
        for (int i = 0; i < 16; i++) s[i] = (uint8_t)(t[i] ^ rk[16 * round + i]);
    }
    memcpy(out, s, 16);
    nc_wipe(s, sizeof s);
    nc_wipe(t, sizeof t);
}

/* ---- AES-NI ---- */

#if NC_KW_HAVE_AESNI
#define NC_AESNI __attribute__((target("aes,sse2")))

NC_AESNI static __m128i shift_xor(__m128i k) {
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, _mm_slli_si128(k, 4));
}

#define EXPAND_A(i, rcon)                                                                   \
    rk[i] = _mm_xor_si128(shift_xor(rk[(i) - 2]),                                            \
                          _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[(i) - 1], rcon), 0xFF))
#define EXPAND_B(i)                                                                         \
    rk[i] = _mm_xor_si128(shift_xor(rk[(i) - 2]),                                            \
                          _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[(i) - 1], 0), 0xAA))

NC_AESNI static void expand_aesni(const uint8_t key[32], __m128i rk[15]) {
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    rk[1] = _mm_loadu_si128((const __m128i *)(key + 16));
    EXPAND_A(2, 0x01); EXPAND_B(3);
    EXPAND_A(4, 0x02); EXPAND_B(5);
    EXPAND_A(6, 0x04); EXPAND_B(7);
    EXPAND_A(8, 0x08); EXPAND_B(9);
    EXPAND_A(10, 0x10); EXPAND_B(11);
    EXPAND_A(12, 0x20); EXPAND_B(13);
    EXPAND_A(14, 0x40);
}

NC_AESNI static __m128i encrypt_aesni(const __m128i rk[15], __m128i b) {
    b = _mm_xor_si128(b, rk[0]);
    for (int r = 1; r < 14; r++) b = _mm_aesenc_si128(b, rk[r]);
    return _mm_aesenclast_si128(b, rk[14]);
}

/* KWP's wrapping function W over A (8 bytes) and R (m semiblocks), in place. */
NC_AESNI static void w_aesni(const __m128i rk[15], uint8_t *a, uint8_t *r, size_t m) {
    uint8_t blk[16];
    for (uint64_t j = 0; j < 6; j++) {
        for (size_t i = 0; i < m; i++) {
            uint64_t t = (uint64_t)m * j + i + 1;
            memcpy(blk, a, 8);
            memcpy(blk + 8, r + 8 * i, 8);
            _mm_storeu_si128((__m128i *)blk, encrypt_aesni(rk, _mm_loadu_si128((const __m128i *)blk)));
            for (int k = 0; k < 8; k++) a[k] = (uint8_t)(blk[k] ^ (uint8_t)(t >> (56 - 8 * k)));
            memcpy(r + 8 * i, blk + 8, 8);
        }
    }
    nc_wipe(blk, sizeof blk);
}

NC_AESNI static void block_aesni(const __m128i rk[15], const uint8_t in[16], uint8_t out[16]) {
    _mm_storeu_si128((__m128i *)out, encrypt_aesni(rk, _mm_loadu_si128((const __m128i *)in)));
}

static int have_aesni(void) {
    return !g_force_portable && __builtin_cpu_supports("aes");
}
#else
static int have_aesni(void) { return 0; }
#endif

static void w_portable(const uint8_t rk[240], uint8_t *a, uint8_t *r, size_t m) {
    uint8_t blk[16];
    for (uint64_t j = 0; j < 6; j++) {
        for (size_t i = 0; i < m; i++) {
            uint64_t t = (uint64_t)m * j + i + 1;
            memcpy(blk, a, 8);
            memcpy(blk + 8, r + 8 * i, 8);
            encrypt_portable(rk, blk, blk);
            for (int k = 0; k < 8; k++) a[k] = (uint8_t)(blk[k] ^ (uint8_t)(t >> (56 - 8 * k)));
            memcpy(r + 8 * i, blk + 8, 8);
        }
    }
    nc_wipe(blk, sizeof blk);
}

size_t nc_kwp_wrapped_len(size_t inlen) { return ((inlen + 7) / 8) * 8 + 8; }

int nc_kw_uses_aesni(void) { return have_aesni(); }

void nc_kw_force_portable(int force_portable) { g_force_portable = force_portable != 0; }

void nc_aes256_encrypt_block(const uint8_t key[32], const uint8_t in[16], uint8_t out[16]) {
#if NC_KW_HAVE_AESNI
    if (have_aesni()) {
        __m128i rk[15];
        expand_aesni(key, rk);
        block_aesni(rk, in, out);
        nc_wipe(rk, sizeof rk);
        return;
    }
#endif
    uint8_t rk[240];
    expand_portable(key, rk);
    encrypt_portable(rk, in, out);
    nc_wipe(rk, sizeof rk);
}

int nc_aes256_kwp_wrap_batch(const uint8_t key[32], const uint8_t *in, size_t inlen, size_t n, uint8_t *out) {
    if (!key || inlen == 0 || inlen > NC_KW_MAX_INPUT || (n && (!in || !out))) return NC_KW_EARG;
    size_t padded = nc_kwp_wrapped_len(inlen) - 8, m = padded / 8, outlen = padded + 8;
    uint8_t aiv[8] = {0xA6, 0x59, 0x59, 0xA6, (uint8_t)(inlen >> 24), (uint8_t)(inlen >> 16),
                      (uint8_t)(inlen >> 8), (uint8_t)inlen};
    int ni = have_aesni();
    uint8_t rk8[240];
#if NC_KW_HAVE_AESNI
    __m128i rk[15];
    if (ni) expand_aesni(key, rk);
#endif
    if (!ni) expand_portable(key, rk8);
    for (size_t k = 0; k < n; k++) {
        uint8_t *o = out + k * outlen;
        memcpy(o, aiv, 8);
        memset(o + 8, 0, padded);
        memcpy(o + 8, in + k * inlen, inlen);
        if (m == 1) { /* a single 16-byte block is simply encrypted (RFC 5649 section 4.1) */
#if NC_KW_HAVE_AESNI
            if (ni) {
                block_aesni(rk, o, o);
                continue;
            }
#endif
            encrypt_portable(rk8, o, o);
            continue;
        }
#if NC_KW_HAVE_AESNI
        if (ni) {
            w_aesni(rk, o, o + 8, m);
            continue;
        }
#endif
        w_portable(rk8, o, o + 8, m);
    }
#if NC_KW_HAVE_AESNI
    nc_wipe(rk, sizeof rk);
#endif
    nc_wipe(rk8, sizeof rk8);
    return NC_KW_OK;
}
