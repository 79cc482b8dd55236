/* P-256 field, scalar and point arithmetic, ECDSA, ECDH, encodings and batch calls.
 *
 * Field elements and scalars are NC_P256_NLIMBS little-endian limbs in Montgomery form
 * (R = 2^256) for both moduli, so the 64- and 32-bit builds hold identical 256-bit values.
 * Points are Jacobian (X, Y, Z), infinity is Z = 0. Secret scalars go through two constant-time
 * multiplications: a fixed-base comb over a precomputed affine table (the base point's generated
 * table, or one built for a public key with nc_p256_table_init) and a fixed-window variable-base
 * multiplication; both use signed (Booth) digits and masked full-table scans. Public-only work
 * (verification's wNAF multiplication and final addition, decoding, validation) may branch. */
#include "nc_p256.h"

#include <string.h>

#include "nc_hash.h"
#include "nc_p256_limb.h"

#if NC_P256_LIMB_BITS == 64 && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NC_P256_NO_INTRIN)
#include <x86intrin.h> /* _addcarry_u64 / _subborrow_u64: adc/sbb chains without -m flags */
#include <cpuid.h>
#include <stdlib.h>
#define NC_P256_X86_INTRIN 1
#endif

#ifdef NC_P256_CTGRIND
#include <valgrind/memcheck.h>
/* A value derived from a secret that is safe to reveal (a rejection-sampling verdict, the
 * public r of a signature): tell memcheck it no longer carries secret taint. */
#define NC_DECLASSIFY(p, len) VALGRIND_MAKE_MEM_DEFINED((p), (len))
#else
#define NC_DECLASSIFY(p, len) ((void)(p), (void)(len))
#endif

typedef nc_p256_limb limb;
#define NL NC_P256_NLIMBS
#define LB NC_P256_LIMB_BITS
#define L NC_P256_L
#if LB == 64
__extension__ typedef unsigned __int128 dlimb;
#else
typedef uint64_t dlimb;
#endif

typedef struct {
    limb X[NL], Y[NL], Z[NL];
} jac;

typedef struct {
    limb x[NL], y[NL];
} aff;

#ifndef NC_P256_NO_GTABLE
extern const nc_p256_limb nc_p256_g_comb[NC_P256_COMB_LIMBS];
#endif

/* ---- constants (little-endian 64-bit words) ---- */
static const limb P[NL] = {L(0xffffffffffffffffULL), L(0x00000000ffffffffULL), L(0x0000000000000000ULL),
                           L(0xffffffff00000001ULL)};
static const limb N[NL] = {L(0xf3b9cac2fc632551ULL), L(0xbce6faada7179e84ULL), L(0xffffffffffffffffULL),
                           L(0xffffffff00000000ULL)};
static const limb ONE_P[NL] = {L(0x0000000000000001ULL), L(0xffffffff00000000ULL),
                               L(0xffffffffffffffffULL), L(0x00000000fffffffeULL)};
static const limb R2_P[NL] = {L(0x0000000000000003ULL), L(0xfffffffbffffffffULL), L(0xfffffffffffffffeULL),
                              L(0x00000004fffffffdULL)};
static const limb B_MONT[NL] = {L(0xd89cdf6229c4bddfULL), L(0xacf005cd78843090ULL),
                                L(0xe5a220abf7212ed6ULL), L(0xdc30061d04874834ULL)};
static const limb R2_N[NL] = {L(0x83244c95be79eea2ULL), L(0x4699799c49bd6fa6ULL), L(0x2845b2392b6bec59ULL),
                              L(0x66e12d94f3d95620ULL)};
static const limb ONE_N[NL] = {L(0x0c46353d039cdaafULL), L(0x4319055258e8617bULL),
                               L(0x0000000000000000ULL), L(0x00000000ffffffffULL)};
static const limb NM2[NL] = {L(0xf3b9cac2fc63254fULL), L(0xbce6faada7179e84ULL), L(0xffffffffffffffffULL),
                             L(0xffffffff00000000ULL)};
static const limb SQRT_EXP[NL] = {L(0x0000000000000000ULL), L(0x0000000040000000ULL),
                                  L(0x4000000000000000ULL), L(0x3fffffffc0000000ULL)};
#if LB == 64
#define N0INV ((limb)0xccd1c8aaee00bc4fULL)
#else
#define N0INV ((limb)0xee00bc4fu)
#endif

/* ---- constant-time helpers ---- */
static inline limb ct_is_zero_limb(limb x) { /* all ones when x == 0 */
    return (limb)0 - (limb)(1 ^ ((x | ((limb)0 - x)) >> (LB - 1)));
}
static inline limb ct_eq(limb a, limb b) { return ct_is_zero_limb(a ^ b); }
static inline limb fe_is_zero(const limb *a) {
    limb acc = 0;
    for (int i = 0; i < NL; i++) acc |= a[i];
    return ct_is_zero_limb(acc);
}
static inline void fe_copy(limb *r, const limb *a) {
    for (int i = 0; i < NL; i++) r[i] = a[i];
}
/* r = mask ? a : r */
static inline void fe_cmov(limb *r, const limb *a, limb mask) {
    for (int i = 0; i < NL; i++) r[i] ^= mask & (r[i] ^ a[i]);
}
static inline limb fe_eq(const limb *a, const limb *b) {
    limb acc = 0;
    for (int i = 0; i < NL; i++) acc |= a[i] ^ b[i];
    return ct_is_zero_limb(acc);
}
/* 1 when a < m (constant time) */
static inline limb fe_lt(const limb *a, const limb *m) {
    dlimb bw = 0;
    for (int i = 0; i < NL; i++) {
        dlimb x = (dlimb)a[i] - m[i] - bw;
        bw = (x >> LB) & 1;
    }
    return (limb)bw;
}

/* ---- generic Montgomery arithmetic (CIOS); inlined so each modulus gets its own code ---- */
static inline __attribute__((always_inline)) void mont_mul(limb *r, const limb *a, const limb *b,
                                                            const limb *m, limb minv) {
    limb t[NL + 2];
    for (int i = 0; i < NL + 2; i++) t[i] = 0;
    for (int i = 0; i < NL; i++) {
        dlimb c = 0;
        for (int j = 0; j < NL; j++) {
            c += (dlimb)a[j] * b[i] + t[j];
            t[j] = (limb)c;
            c >>= LB;
        }
        c += t[NL];
        t[NL] = (limb)c;
        t[NL + 1] = (limb)(c >> LB);
        limb q = t[0] * minv;
        c = ((dlimb)q * m[0] + t[0]) >> LB;
        for (int j = 1; j < NL; j++) {
            c += (dlimb)q * m[j] + t[j];
            t[j - 1] = (limb)c;
            c >>= LB;
        }
        c += t[NL];
        t[NL - 1] = (limb)c;
        t[NL] = t[NL + 1] + (limb)(c >> LB);
    }
    limb d[NL];
    dlimb bw = 0;
    for (int j = 0; j < NL; j++) {
        dlimb x = (dlimb)t[j] - m[j] - bw;
        d[j] = (limb)x;
        bw = (x >> LB) & 1;
    }
    limb keep = (limb)0 - (limb)((((dlimb)t[NL] - bw) >> LB) & 1); /* t < m: keep t */
    for (int j = 0; j < NL; j++) r[j] = (t[j] & keep) | (d[j] & ~keep);
}

static inline __attribute__((always_inline)) void mod_add(limb *r, const limb *a, const limb *b,
                                                           const limb *m) {
    limb t[NL], d[NL];
    dlimb c = 0;
    for (int j = 0; j < NL; j++) {
        c += (dlimb)a[j] + b[j];
        t[j] = (limb)c;
        c >>= LB;
    }
    limb carry = (limb)c;
    dlimb bw = 0;
    for (int j = 0; j < NL; j++) {
        dlimb x = (dlimb)t[j] - m[j] - bw;
        d[j] = (limb)x;
        bw = (x >> LB) & 1;
    }
    limb keep = (limb)0 - ((limb)bw & ~carry & 1); /* sum < m: keep t */
    for (int j = 0; j < NL; j++) r[j] = (t[j] & keep) | (d[j] & ~keep);
}

static inline __attribute__((always_inline)) void mod_sub(limb *r, const limb *a, const limb *b,
                                                           const limb *m) {
    limb t[NL];
    dlimb bw = 0;
    for (int j = 0; j < NL; j++) {
        dlimb x = (dlimb)a[j] - b[j] - bw;
        t[j] = (limb)x;
        bw = (x >> LB) & 1;
    }
    limb mask = (limb)0 - (limb)bw;
    dlimb c = 0;
    for (int j = 0; j < NL; j++) {
        c += (dlimb)t[j] + (m[j] & mask);
        r[j] = (limb)c;
        c >>= LB;
    }
}

#if LB == 64
/* 64-bit limbs: field arithmetic specialised for p = 2^256 - 2^224 + 2^192 + 2^96 - 1.
 * Montgomery reduction needs no multiplier (-p^-1 = 1 mod 2^64) and q*p = q*(p+1) - q with
 * p + 1 = 2^96 + 2^192 * 0xffffffff00000001, so each round is one multiplication and a carry chain. */
#if defined(NC_P256_X86_INTRIN)
typedef unsigned long long u64c;
#define ADC(c, a, b, o) (c) = _addcarry_u64((c), (a), (b), &(o))
#define SBB(c, a, b, o) (c) = _subborrow_u64((c), (a), (b), &(o))
#else
typedef uint64_t u64c;
static inline unsigned char adc64(unsigned char c, uint64_t a, uint64_t b, uint64_t *o) {
    dlimb s = (dlimb)a + b + c;
    *o = (uint64_t)s;
    return (unsigned char)(s >> 64);
}
static inline unsigned char sbb64(unsigned char c, uint64_t a, uint64_t b, uint64_t *o) {
    dlimb s = (dlimb)a - b - c;
    *o = (uint64_t)s;
    return (unsigned char)((s >> 64) & 1);
}
#define ADC(c, a, b, o) (c) = adc64((c), (a), (b), &(o))
#define SBB(c, a, b, o) (c) = sbb64((c), (a), (b), &(o))
#endif
#define P1 0x00000000ffffffffULL
#define P3 0xffffffff00000001ULL

static void fe_mul_portable(limb *r, const limb *a, const limb *b) {
    /* CIOS with one reduction round per row: the accumulator stays 5 words (< 2p). */
    u64c t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5, w1, w2, w3, w4, d0, d1, d2, d3, d4;
    unsigned char c;
    for (int i = 0; i < 4; i++) {
        dlimb p0 = (dlimb)a[0] * b[i], p1 = (dlimb)a[1] * b[i], p2 = (dlimb)a[2] * b[i],
              p3 = (dlimb)a[3] * b[i];
        c = 0;
        ADC(c, (u64c)(p0 >> 64), (u64c)p1, w1);
        ADC(c, (u64c)(p1 >> 64), (u64c)p2, w2);
        ADC(c, (u64c)(p2 >> 64), (u64c)p3, w3);
        w4 = (u64c)(p3 >> 64) + c;
        c = 0;
        ADC(c, t0, (u64c)p0, t0);
        ADC(c, t1, w1, t1);
        ADC(c, t2, w2, t2);
        ADC(c, t3, w3, t3);
        ADC(c, t4, w4, t4);
        t5 = c;
        u64c q = t0;
        dlimb v = (dlimb)q * P3;
        c = 0;
        ADC(c, t1, q << 32, t1);
        ADC(c, t2, q >> 32, t2);
        ADC(c, t3, (u64c)v, t3);
        ADC(c, t4, (u64c)(v >> 64), t4);
        t5 += c;
        t0 = t1;
        t1 = t2;
        t2 = t3;
        t3 = t4;
        t4 = t5;
    }
    c = 0;
    SBB(c, t0, 0xffffffffffffffffULL, d0);
    SBB(c, t1, P1, d1);
    SBB(c, t2, 0, d2);
    SBB(c, t3, P3, d3);
    SBB(c, t4, 0, d4);
    (void)d4;
    limb keep = (limb)0 - (limb)c;
    r[0] = (t0 & keep) | (d0 & ~keep);
    r[1] = (t1 & keep) | (d1 & ~keep);
    r[2] = (t2 & keep) | (d2 & ~keep);
    r[3] = (t3 & keep) | (d3 & ~keep);
}

#if defined(NC_P256_X86_INTRIN) && !defined(NC_P256_NO_ADX)
/* x86-64 with BMI2 + ADX (picked at load time, see nc_p256_field_backend): the same rows and
 * multiplier-free reduction as fe_mul_portable, with mulx and two independent carry chains
 * (adcx/adox) and the six accumulator words pinned in registers; about 1.45x the throughput
 * of gcc's code for the C above. Straight-line code; the final choice is a cmov, not a branch. */
static void fe_mul_adx(limb *r, const limb *a, const limb *b) {
    uint64_t t0, t1, t2, t3, t4, t5, lo, hi, z = 0;
    const limb *ap = a;
    __asm__ volatile(
        "xor %[t0], %[t0]\n\t"
        "xor %[t1], %[t1]\n\t"
        "xor %[t2], %[t2]\n\t"
        "xor %[t3], %[t3]\n\t"
        "xor %[t4], %[t4]\n\t"
        "xor %[t5], %[t5]\n\t"
        "mov 0(%[b]), %%rdx\n\t"
        "mulx 0(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t0]\n\t"
        "adox %[hi], %[t1]\n\t"
        "mulx 8(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t1]\n\t"
        "adox %[hi], %[t2]\n\t"
        "mulx 16(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t2]\n\t"
        "adox %[hi], %[t3]\n\t"
        "mulx 24(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t3]\n\t"
        "adox %[hi], %[t4]\n\t"
        "adcx %[z], %[t4]\n\t"
        "adox %[z], %[t5]\n\t"
        "adcx %[z], %[t5]\n\t"
        "mov %[t0], %[lo]\n\t"
        "shl $32, %[lo]\n\t"
        "mov %[t0], %[hi]\n\t"
        "shr $32, %[hi]\n\t"
        "add %[lo], %[t1]\n\t"
        "adc %[hi], %[t2]\n\t"
        "movabs $0xffffffff00000001, %%rdx\n\t"
        "mulx %[t0], %[lo], %[hi]\n\t"
        "adc %[lo], %[t3]\n\t"
        "adc %[hi], %[t4]\n\t"
        "adc $0, %[t5]\n\t"
        "xor %[t0], %[t0]\n\t"
        "mov 8(%[b]), %%rdx\n\t"
        "mulx 0(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t1]\n\t"
        "adox %[hi], %[t2]\n\t"
        "mulx 8(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t2]\n\t"
        "adox %[hi], %[t3]\n\t"
        "mulx 16(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t3]\n\t"
        "adox %[hi], %[t4]\n\t"
        "mulx 24(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t4]\n\t"
        "adox %[hi], %[t5]\n\t"
        "adcx %[z], %[t5]\n\t"
        "adox %[z], %[t0]\n\t"
        "adcx %[z], %[t0]\n\t"
        "mov %[t1], %[lo]\n\t"
        "shl $32, %[lo]\n\t"
        "mov %[t1], %[hi]\n\t"
        "shr $32, %[hi]\n\t"
        "add %[lo], %[t2]\n\t"
        "adc %[hi], %[t3]\n\t"
        "movabs $0xffffffff00000001, %%rdx\n\t"
        "mulx %[t1], %[lo], %[hi]\n\t"
        "adc %[lo], %[t4]\n\t"
        "adc %[hi], %[t5]\n\t"
        "adc $0, %[t0]\n\t"
        "xor %[t1], %[t1]\n\t"
        "mov 16(%[b]), %%rdx\n\t"
        "mulx 0(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t2]\n\t"
        "adox %[hi], %[t3]\n\t"
        "mulx 8(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t3]\n\t"
        "adox %[hi], %[t4]\n\t"
        "mulx 16(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t4]\n\t"
        "adox %[hi], %[t5]\n\t"
        "mulx 24(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t5]\n\t"
        "adox %[hi], %[t0]\n\t"
        "adcx %[z], %[t0]\n\t"
        "adox %[z], %[t1]\n\t"
        "adcx %[z], %[t1]\n\t"
        "mov %[t2], %[lo]\n\t"
        "shl $32, %[lo]\n\t"
        "mov %[t2], %[hi]\n\t"
        "shr $32, %[hi]\n\t"
        "add %[lo], %[t3]\n\t"
        "adc %[hi], %[t4]\n\t"
        "movabs $0xffffffff00000001, %%rdx\n\t"
        "mulx %[t2], %[lo], %[hi]\n\t"
        "adc %[lo], %[t5]\n\t"
        "adc %[hi], %[t0]\n\t"
        "adc $0, %[t1]\n\t"
        "xor %[t2], %[t2]\n\t"
        "mov 24(%[b]), %%rdx\n\t"
        "mulx 0(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t3]\n\t"
        "adox %[hi], %[t4]\n\t"
        "mulx 8(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t4]\n\t"
        "adox %[hi], %[t5]\n\t"
        "mulx 16(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t5]\n\t"
        "adox %[hi], %[t0]\n\t"
        "mulx 24(%[a]), %[lo], %[hi]\n\t"
        "adcx %[lo], %[t0]\n\t"
        "adox %[hi], %[t1]\n\t"
        "adcx %[z], %[t1]\n\t"
        "adox %[z], %[t2]\n\t"
        "adcx %[z], %[t2]\n\t"
        "mov %[t3], %[lo]\n\t"
        "shl $32, %[lo]\n\t"
        "mov %[t3], %[hi]\n\t"
        "shr $32, %[hi]\n\t"
        "add %[lo], %[t4]\n\t"
        "adc %[hi], %[t5]\n\t"
        "movabs $0xffffffff00000001, %%rdx\n\t"
        "mulx %[t3], %[lo], %[hi]\n\t"
        "adc %[lo], %[t0]\n\t"
        "adc %[hi], %[t1]\n\t"
        "adc $0, %[t2]\n\t"
        "mov %[t4], %%rdx\n\t"
        "mov %[t5], %[lo]\n\t"
        "mov %[t0], %[hi]\n\t"
        "mov %[t1], %[z]\n\t"
        "mov %[t2], %[t3]\n\t"
        "sub $-1, %%rdx\n\t"
        "mov $0xffffffff, %k[a]\n\t"
        "sbb %[a], %[lo]\n\t"
        "sbb $0, %[hi]\n\t"
        "movabs $0xffffffff00000001, %[a]\n\t"
        "sbb %[a], %[z]\n\t"
        "sbb $0, %[t3]\n\t"
        "cmovnc %%rdx, %[t4]\n\t"
        "cmovnc %[lo], %[t5]\n\t"
        "cmovnc %[hi], %[t0]\n\t"
        "cmovnc %[z], %[t1]\n\t"
        "mov %[t4], 0(%[r])\n\t"
        "mov %[t5], 8(%[r])\n\t"
        "mov %[t0], 16(%[r])\n\t"
        "mov %[t1], 24(%[r])\n\t"
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5),
          [lo] "=&r"(lo), [hi] "=&r"(hi), [a] "+r"(ap), [z] "+r"(z)
        : [b] "r"(b), [r] "r"(r)
        : "rdx", "cc", "memory");
}

static void (*fe_mul_impl)(limb *, const limb *, const limb *) = fe_mul_portable;
static const char *fe_backend = "portable";

/* Runs when the library loads, before any thread can call in. NUSEC_P256_FIELD=portable forces
 * the C path (CI runs the suite both ways); =adx asks for the asm path, used only if the CPU has it. */
__attribute__((constructor)) static void fe_pick_backend(void) {
    unsigned eax, ebx = 0, ecx, edx;
    const char *want = getenv("NUSEC_P256_FIELD");
    int have = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ebx & (1u << 8)) && (ebx & (1u << 19));
#ifdef NC_P256_CTGRIND
    /* valgrind's virtual CPU hides ADX but executes it: the ctgrind build checks the asm path too */
    have = have || (want && strcmp(want, "adx") == 0);
#endif
    if (have && !(want && strcmp(want, "portable") == 0)) {
        fe_mul_impl = fe_mul_adx;
        fe_backend = "adx";
    }
}

static void fe_mul(limb *r, const limb *a, const limb *b) { fe_mul_impl(r, a, b); }
#else
static void fe_mul(limb *r, const limb *a, const limb *b) { fe_mul_portable(r, a, b); }
static const char *fe_backend = "portable";
#endif

const char *nc_p256_field_backend(void) { return fe_backend; }

/* A dedicated squaring (10 products, then reduce) measured slower here than the interleaved
 * multiplication: its long carry chains cost more than the 6 products saved. */
static void fe_sqr(limb *r, const limb *a) { fe_mul(r, a, a); }

static inline __attribute__((always_inline)) void fe_add(limb *r, const limb *a, const limb *b) {
    u64c s0, s1, s2, s3, s4, d0, d1, d2, d3, d4;
    unsigned char c = 0;
    ADC(c, a[0], b[0], s0);
    ADC(c, a[1], b[1], s1);
    ADC(c, a[2], b[2], s2);
    ADC(c, a[3], b[3], s3);
    s4 = c;
    c = 0;
    SBB(c, s0, 0xffffffffffffffffULL, d0);
    SBB(c, s1, P1, d1);
    SBB(c, s2, 0, d2);
    SBB(c, s3, P3, d3);
    SBB(c, s4, 0, d4);
    (void)d4;
    limb keep = (limb)0 - (limb)c;
    r[0] = (s0 & keep) | (d0 & ~keep);
    r[1] = (s1 & keep) | (d1 & ~keep);
    r[2] = (s2 & keep) | (d2 & ~keep);
    r[3] = (s3 & keep) | (d3 & ~keep);
}

static inline __attribute__((always_inline)) void fe_sub(limb *r, const limb *a, const limb *b) {
    u64c d0, d1, d2, d3;
    unsigned char c = 0;
    SBB(c, a[0], b[0], d0);
    SBB(c, a[1], b[1], d1);
    SBB(c, a[2], b[2], d2);
    SBB(c, a[3], b[3], d3);
    limb m = (limb)0 - (limb)c;
    c = 0;
    ADC(c, d0, m, d0);
    ADC(c, d1, m & P1, d1);
    ADC(c, d2, 0, d2);
    ADC(c, d3, m & P3, d3);
    r[0] = d0;
    r[1] = d1;
    r[2] = d2;
    r[3] = d3;
}

/* Montgomery multiplication mod n, same interleaved shape as fe_mul with q = t0 * -n^-1. */
static void sc_mul(limb *r, const limb *a, const limb *b) {
    u64c t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5, w1, w2, w3, w4, d0, d1, d2, d3, d4;
    unsigned char c;
    for (int i = 0; i < 4; i++) {
        dlimb p0 = (dlimb)a[0] * b[i], p1 = (dlimb)a[1] * b[i], p2 = (dlimb)a[2] * b[i],
              p3 = (dlimb)a[3] * b[i];
        c = 0;
        ADC(c, (u64c)(p0 >> 64), (u64c)p1, w1);
        ADC(c, (u64c)(p1 >> 64), (u64c)p2, w2);
        ADC(c, (u64c)(p2 >> 64), (u64c)p3, w3);
        w4 = (u64c)(p3 >> 64) + c;
        c = 0;
        ADC(c, t0, (u64c)p0, t0);
        ADC(c, t1, w1, t1);
        ADC(c, t2, w2, t2);
        ADC(c, t3, w3, t3);
        ADC(c, t4, w4, t4);
        t5 = c;
        u64c q = t0 * N0INV;
        p0 = (dlimb)q * N[0];
        p1 = (dlimb)q * N[1];
        p2 = (dlimb)q * N[2];
        p3 = (dlimb)q * N[3];
        c = 0;
        ADC(c, (u64c)(p0 >> 64), (u64c)p1, w1);
        ADC(c, (u64c)(p1 >> 64), (u64c)p2, w2);
        ADC(c, (u64c)(p2 >> 64), (u64c)p3, w3);
        w4 = (u64c)(p3 >> 64) + c;
        c = 0;
        ADC(c, t0, (u64c)p0, t0); /* becomes 0 */
        ADC(c, t1, w1, t1);
        ADC(c, t2, w2, t2);
        ADC(c, t3, w3, t3);
        ADC(c, t4, w4, t4);
        t5 += c;
        t0 = t1;
        t1 = t2;
        t2 = t3;
        t3 = t4;
        t4 = t5;
    }
    c = 0;
    SBB(c, t0, N[0], d0);
    SBB(c, t1, N[1], d1);
    SBB(c, t2, N[2], d2);
    SBB(c, t3, N[3], d3);
    SBB(c, t4, 0, d4);
    (void)d4;
    limb keep = (limb)0 - (limb)c;
    r[0] = (t0 & keep) | (d0 & ~keep);
    r[1] = (t1 & keep) | (d1 & ~keep);
    r[2] = (t2 & keep) | (d2 & ~keep);
    r[3] = (t3 & keep) | (d3 & ~keep);
}
#else
static void fe_mul(limb *r, const limb *a, const limb *b) { mont_mul(r, a, b, P, 1); }
const char *nc_p256_field_backend(void) { return "portable"; }
static void fe_sqr(limb *r, const limb *a) { mont_mul(r, a, a, P, 1); }
static void fe_add(limb *r, const limb *a, const limb *b) { mod_add(r, a, b, P); }
static void fe_sub(limb *r, const limb *a, const limb *b) { mod_sub(r, a, b, P); }
static void sc_mul(limb *r, const limb *a, const limb *b) { mont_mul(r, a, b, N, N0INV); }
#endif
static void sc_add(limb *r, const limb *a, const limb *b) { mod_add(r, a, b, N); }

/* r = a^e (Montgomery in and out) for a PUBLIC exponent e; 4-bit fixed window. Constant time in a. */
static void pow_public(limb *r, const limb *a, const limb *e, const limb *one,
                       void (*mul)(limb *, const limb *, const limb *)) {
    limb tab[16][NL], acc[NL];
    fe_copy(tab[0], one);
    fe_copy(tab[1], a);
    for (int i = 2; i < 16; i++) mul(tab[i], tab[i - 1], a);
    fe_copy(acc, one);
    for (int i = NL * LB / 4 - 1; i >= 0; i--) {
        unsigned nib = (unsigned)(e[(i * 4) / LB] >> ((i * 4) % LB)) & 15;
        for (int k = 0; k < 4; k++) mul(acc, acc, acc);
        if (nib) mul(acc, acc, tab[nib]);
    }
    fe_copy(r, acc);
}
/* r = a^(2^n) * b */
static void fe_sqr_n_mul(limb *r, const limb *a, int n, const limb *b) {
    limb t[NL];
    fe_sqr(t, a);
    for (int i = 1; i < n; i++) fe_sqr(t, t);
    fe_mul(r, t, b);
}
/* a^(p-2) by a fixed addition chain (255 squarings, 13 multiplications; the 4-bit window above
 * needs about 80 multiplications); xK = a^(2^K - 1). Constant time in a. */
static void fe_inv(limb *r, const limb *a) {
    limb x2[NL], x3[NL], x6[NL], x12[NL], x15[NL], x30[NL], x32[NL], t[NL];
    fe_sqr_n_mul(x2, a, 1, a);
    fe_sqr_n_mul(x3, x2, 1, a);
    fe_sqr_n_mul(x6, x3, 3, x3);
    fe_sqr_n_mul(x12, x6, 6, x6);
    fe_sqr_n_mul(x15, x12, 3, x3);
    fe_sqr_n_mul(x30, x15, 15, x15);
    fe_sqr_n_mul(x32, x30, 2, x2);
    fe_sqr_n_mul(t, x32, 32, a); /* p - 2 = ffffffff 00000001 0^128 ffffffff ffffffff fffffffd */
    fe_sqr_n_mul(t, t, 128, x32);
    fe_sqr_n_mul(t, t, 32, x32);
    fe_sqr_n_mul(t, t, 30, x30);
    fe_sqr_n_mul(r, t, 2, a);
}
static void sc_inv(limb *r, const limb *a) { pow_public(r, a, NM2, ONE_N, sc_mul); }

/* ---- byte conversion ---- */
static void fe_from_be(limb *r, const uint8_t *in) {
    for (int i = 0; i < NL; i++) {
        limb v = 0;
        for (int k = 0; k < LB / 8; k++) v = (v << 8) | in[32 - (i + 1) * (LB / 8) + k];
        r[i] = v;
    }
}
static void fe_to_be(uint8_t *out, const limb *a) {
    for (int i = 0; i < NL; i++)
        for (int k = 0; k < LB / 8; k++)
            out[32 - (i + 1) * (LB / 8) + k] = (uint8_t)(a[i] >> (LB - 8 - 8 * k));
}
static void fe_to_mont(limb *r, const limb *a) { fe_mul(r, a, R2_P); }
static void fe_from_mont(limb *r, const limb *a) {
    static const limb one[NL] = {1};
    fe_mul(r, a, one);
}

/* ---- points ---- */
/* r = 2a; a = -3. Infinity (Z = 0) stays infinity. */
static void pt_dbl(jac *r, const jac *a) {
    limb delta[NL], gamma[NL], beta[NL], alpha[NL], t1[NL], t2[NL];
    fe_sqr(delta, a->Z);
    fe_sqr(gamma, a->Y);
    fe_mul(beta, a->X, gamma);
    fe_sub(t1, a->X, delta);
    fe_add(t2, a->X, delta);
    fe_mul(t1, t1, t2);
    fe_add(alpha, t1, t1);
    fe_add(alpha, alpha, t1);
    fe_add(t1, a->Y, a->Z);
    fe_sqr(t1, t1);
    fe_sub(t1, t1, gamma);
    fe_sub(r->Z, t1, delta);
    fe_add(beta, beta, beta);
    fe_add(beta, beta, beta); /* 4 beta */
    fe_sqr(t1, alpha);
    fe_add(t2, beta, beta);
    fe_sub(r->X, t1, t2);
    fe_sub(t1, beta, r->X);
    fe_mul(t1, alpha, t1);
    fe_sqr(gamma, gamma);
    fe_add(gamma, gamma, gamma);
    fe_add(gamma, gamma, gamma);
    fe_add(gamma, gamma, gamma);
    fe_sub(r->Y, t1, gamma);
}

/* r = a + b for a != +-b, neither infinity. *hz / *rz get all-ones masks when H == 0 / R == 0
 * (H == R == 0: a == b, the caller must double instead; H == 0 alone: a == -b). */
static void pt_add(jac *r, const jac *a, const jac *b, limb *hz, limb *rz) {
    limb z1z1[NL], z2z2[NL], u1[NL], u2[NL], s1[NL], s2[NL], h[NL], rr[NL], hh[NL], hhh[NL], v[NL];
    limb x3[NL], y3[NL], z3[NL];
    fe_sqr(z1z1, a->Z);
    fe_sqr(z2z2, b->Z);
    fe_mul(u1, a->X, z2z2);
    fe_mul(u2, b->X, z1z1);
    fe_mul(s1, a->Y, b->Z);
    fe_mul(s1, s1, z2z2);
    fe_mul(s2, b->Y, a->Z);
    fe_mul(s2, s2, z1z1);
    fe_sub(h, u2, u1);
    fe_sub(rr, s2, s1);
    *hz = fe_is_zero(h);
    *rz = fe_is_zero(rr);
    fe_sqr(hh, h);
    fe_mul(hhh, hh, h);
    fe_mul(v, u1, hh);
    fe_sqr(x3, rr);
    fe_sub(x3, x3, hhh);
    fe_sub(x3, x3, v);
    fe_sub(x3, x3, v);
    fe_sub(y3, v, x3);
    fe_mul(y3, rr, y3);
    fe_mul(s1, s1, hhh);
    fe_sub(y3, y3, s1);
    fe_mul(z3, a->Z, b->Z);
    fe_mul(z3, z3, h);
    fe_copy(r->X, x3);
    fe_copy(r->Y, y3);
    fe_copy(r->Z, z3);
}

/* r = a + b with b affine, a != +-b, neither infinity. */
static void pt_add_affine(jac *r, const jac *a, const aff *b) {
    limb z1z1[NL], u2[NL], s2[NL], h[NL], rr[NL], hh[NL], hhh[NL], v[NL], x3[NL], y3[NL];
    fe_sqr(z1z1, a->Z);
    fe_mul(u2, b->x, z1z1);
    fe_mul(s2, b->y, a->Z);
    fe_mul(s2, s2, z1z1);
    fe_sub(h, u2, a->X);
    fe_sub(rr, s2, a->Y);
    fe_sqr(hh, h);
    fe_mul(hhh, hh, h);
    fe_mul(v, a->X, hh);
    fe_sqr(x3, rr);
    fe_sub(x3, x3, hhh);
    fe_sub(x3, x3, v);
    fe_sub(x3, x3, v);
    fe_sub(y3, v, x3);
    fe_mul(y3, rr, y3);
    fe_mul(hhh, a->Y, hhh);
    fe_sub(y3, y3, hhh);
    fe_mul(r->Z, a->Z, h);
    fe_copy(r->X, x3);
    fe_copy(r->Y, y3);
}

/* Variable-time complete addition, for public points only. */
static void pt_add_public(jac *r, const jac *a, const jac *b) {
    limb hz, rz;
    jac t;
    if (fe_is_zero(a->Z)) {
        *r = *b;
        return;
    }
    if (fe_is_zero(b->Z)) {
        *r = *a;
        return;
    }
    pt_add(&t, a, b, &hz, &rz);
    if (hz) {
        if (rz)
            pt_dbl(&t, a);
        else
            memset(&t, 0, sizeof t);
    }
    *r = t;
}

static void jac_cmov(jac *r, const jac *a, limb mask) {
    fe_cmov(r->X, a->X, mask);
    fe_cmov(r->Y, a->Y, mask);
    fe_cmov(r->Z, a->Z, mask);
}

/* y -> p - y when mask is set (y != 0 for every curve point). */
static void fe_cneg(limb *y, limb mask) {
    limb t[NL];
    fe_sub(t, P, y);
    fe_cmov(y, t, mask);
}

/* ---- scalar windows ---- */
/* Scalar bytes little-endian, padded to 36 so window reads never run past the end. */
static void scalar_le(uint8_t le[36], const uint8_t be[32]) {
    for (int i = 0; i < 32; i++) le[i] = be[31 - i];
    le[32] = le[33] = le[34] = le[35] = 0;
}
static unsigned scalar_bits(const uint8_t le[36], int pos, int width) {
    if (pos < 0) return (scalar_bits(le, 0, width - 1) << 1) & ((1u << width) - 1);
    unsigned v = (unsigned)le[pos / 8] | ((unsigned)le[pos / 8 + 1] << 8) | ((unsigned)le[pos / 8 + 2] << 16);
    return (v >> (pos % 8)) & ((1u << width) - 1);
}
/* Booth recoding of a (w+1)-bit window: digit = sign ? -mag : mag, 0 <= mag <= 2^(w-1). */
static void booth(unsigned in, int w, limb *negmask, limb *mag) {
    unsigned s = ~((in >> w) - 1);
    unsigned d = (1u << (w + 1)) - in - 1;
    d = (d & s) | (in & ~s);
    d = (d >> 1) + (d & 1);
    *negmask = (limb)0 - (limb)(s & 1);
    *mag = (limb)d;
}

/* pt = row[mag - 1], or 0 for mag = 0: a masked scan of the whole comb row. */
#if defined(NC_P256_X86_INTRIN)
/* SSE2 (baseline x86-64): a vector compare builds each point's mask, four 16-byte lanes carry x, y. */
static inline void row_select(aff *pt, const limb *row, limb mag) {
    __m128i want = _mm_set1_epi32((int)mag), cnt = _mm_set1_epi32(1), one = _mm_set1_epi32(1);
    __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
    const __m128i *e = (const __m128i *)row;
    for (int p = 0; p < NC_P256_COMB_POINTS; p++, e += 4) {
        __m128i m = _mm_cmpeq_epi32(cnt, want);
        a0 = _mm_or_si128(a0, _mm_and_si128(_mm_loadu_si128(e), m));
        a1 = _mm_or_si128(a1, _mm_and_si128(_mm_loadu_si128(e + 1), m));
        a2 = _mm_or_si128(a2, _mm_and_si128(_mm_loadu_si128(e + 2), m));
        a3 = _mm_or_si128(a3, _mm_and_si128(_mm_loadu_si128(e + 3), m));
        cnt = _mm_add_epi32(cnt, one);
    }
    _mm_storeu_si128((__m128i *)pt->x, a0);
    _mm_storeu_si128((__m128i *)(pt->x + 2), a1);
    _mm_storeu_si128((__m128i *)pt->y, a2);
    _mm_storeu_si128((__m128i *)(pt->y + 2), a3);
}
#else
static inline void row_select(aff *pt, const limb *row, limb mag) {
    limb acc[2 * NL] = {0};
    for (int p = 0; p < NC_P256_COMB_POINTS; p++) {
        limb msk = ct_eq(mag, (limb)(p + 1));
        const limb *e = row + (size_t)p * 2 * NL;
        for (int w = 0; w < 2 * NL; w++) acc[w] |= e[w] & msk;
    }
    memcpy(pt->x, acc, sizeof pt->x);
    memcpy(pt->y, acc + NL, sizeof pt->y);
}
#endif

/* Fixed-base comb: r = k * P where table is P's comb table and k (32 bytes BE) is < n. */
static void comb_mul(jac *r, const limb *table, const uint8_t k[32]) {
    uint8_t le[36];
    jac acc, sum;
    aff pt;
    limb inf = ~(limb)0;
    scalar_le(le, k);
    memset(&acc, 0, sizeof acc);
    for (int i = 0; i < NC_P256_COMB_WINDOWS; i++) {
        limb neg, mag;
        booth(scalar_bits(le, NC_P256_COMB_W * i - 1, NC_P256_COMB_W + 1), NC_P256_COMB_W, &neg, &mag);
        const limb *row = table + (size_t)i * NC_P256_COMB_POINTS * 2 * NL;
        memset(&pt, 0, sizeof pt);
#ifdef NC_P256_CTGRIND_LEAK
        /* Deliberately leaky variant, built only by the ctgrind test to prove that the check
         * can fail: a branch on the secret digit and a table index derived from it. */
        if (mag != 0) {
            fe_copy(pt.x, row + (size_t)(mag - 1) * 2 * NL);
            fe_copy(pt.y, row + (size_t)(mag - 1) * 2 * NL + NL);
        }
#else
        row_select(&pt, row, mag);
#endif
        fe_cneg(pt.y, neg);
        pt_add_affine(&sum, &acc, &pt);
        limb zero = ct_is_zero_limb(mag);
        /* digit 0: keep acc; acc at infinity: take the table point; else the sum */
        jac_cmov(&acc, &sum, ~zero & ~inf);
        fe_cmov(acc.X, pt.x, ~zero & inf);
        fe_cmov(acc.Y, pt.y, ~zero & inf);
        fe_cmov(acc.Z, ONE_P, ~zero & inf);
        inf &= zero;
    }
    *r = acc;
    nc_wipe(le, sizeof le);
}

/* Batched fixed-base comb in affine coordinates: out[i] = k_i * P (affine, Montgomery form) for
 * m scalars k_i < n (32 bytes BE each, stride apart), with P's comb table. Every window adds one
 * table point to each item's affine accumulator with lambda = dy / dx, and the m divisions of a
 * window share one inversion (Montgomery's trick): about 6 multiplications per item and window
 * instead of the 11 of a mixed Jacobian addition, and the window's table row stays in L1 while
 * all m items scan it. Items whose digit is 0, or whose accumulator is still infinity, feed
 * dx = 1 and are masked out, so the shared product never meets 0 (as in comb_mul, acc != +-pt
 * for every scalar < n). An item whose scalar is 0 comes out as (R, R), i.e. (1, 1) once out of
 * Montgomery form: the placeholder the batch callers already used. Constant time in every k_i. */
#if NC_P256_LIMB_BITS == 64
#define COMB_BATCH 256
#else
#define COMB_BATCH 16 /* stack-frugal on Cortex-M */
#endif

typedef struct {
    aff acc, pt;
    limb dx[NL], pre[NL];
    limb add, take, inf;
    uint8_t le[36];
} comb_item;

static void comb_mul_batch(aff *out, const limb *table, const uint8_t *ks, size_t stride, size_t m) {
    comb_item it[COMB_BATCH];
    limb inv[NL], dinv[2][NL], lam[2][NL], t[2][NL], x3[2][NL], y3[2][NL];
    if (m == 0) return;
    for (size_t j = 0; j < m; j++) {
        scalar_le(it[j].le, ks + stride * j);
        it[j].inf = ~(limb)0;
        memset(&it[j].acc, 0, sizeof it[j].acc);
    }
    for (int i = 0; i < NC_P256_COMB_WINDOWS; i++) {
        const limb *row = table + (size_t)i * NC_P256_COMB_POINTS * 2 * NL;
        for (size_t j = 0; j < m; j++) {
            comb_item *c = &it[j];
            limb neg, mag;
            booth(scalar_bits(c->le, NC_P256_COMB_W * i - 1, NC_P256_COMB_W + 1), NC_P256_COMB_W, &neg, &mag);
            row_select(&c->pt, row, mag);
            fe_cneg(c->pt.y, neg);
            limb zero = ct_is_zero_limb(mag);
            c->add = ~zero & ~c->inf;
            c->take = ~zero & c->inf;
            c->inf &= zero;
            fe_sub(c->dx, c->pt.x, c->acc.x);
            fe_cmov(c->dx, ONE_P, ~c->add);
            if (j == 0)
                fe_copy(c->pre, c->dx);
            else
                fe_mul(c->pre, it[j - 1].pre, c->dx);
        }
        fe_inv(inv, it[m - 1].pre);
        /* Backwards, two items at a time: their multiplications are independent and adjacent, so
         * the CPU overlaps the two dependency chains (one item alone is latency-bound). */
        for (size_t j = m; j > 0;) {
            size_t cnt = j >= 2 ? 2 : 1;
            comb_item *c[2];
            for (size_t u = 0; u < cnt; u++) {
                j--;
                c[u] = &it[j];
                if (j > 0) {
                    fe_mul(dinv[u], inv, it[j - 1].pre);
                    fe_mul(inv, inv, c[u]->dx);
                } else {
                    fe_copy(dinv[u], inv);
                }
            }
            for (size_t u = 0; u < cnt; u++) {
                fe_sub(t[u], c[u]->pt.y, c[u]->acc.y);
                fe_mul(lam[u], t[u], dinv[u]);
            }
            for (size_t u = 0; u < cnt; u++) fe_sqr(x3[u], lam[u]);
            for (size_t u = 0; u < cnt; u++) {
                fe_sub(x3[u], x3[u], c[u]->acc.x);
                fe_sub(x3[u], x3[u], c[u]->pt.x);
                fe_sub(t[u], c[u]->acc.x, x3[u]);
                fe_mul(y3[u], lam[u], t[u]);
            }
            for (size_t u = 0; u < cnt; u++) {
                fe_sub(y3[u], y3[u], c[u]->acc.y);
                fe_cmov(c[u]->acc.x, x3[u], c[u]->add);
                fe_cmov(c[u]->acc.y, y3[u], c[u]->add);
                fe_cmov(c[u]->acc.x, c[u]->pt.x, c[u]->take);
                fe_cmov(c[u]->acc.y, c[u]->pt.y, c[u]->take);
            }
        }
    }
    for (size_t j = 0; j < m; j++) {
        fe_cmov(it[j].acc.x, ONE_P, it[j].inf);
        fe_cmov(it[j].acc.y, ONE_P, it[j].inf);
        out[j] = it[j].acc;
    }
    nc_wipe(it, m * sizeof it[0]);
    nc_wipe(inv, sizeof inv);
    nc_wipe(dinv, sizeof dinv);
    nc_wipe(lam, sizeof lam);
    nc_wipe(t, sizeof t);
    nc_wipe(x3, sizeof x3);
    nc_wipe(y3, sizeof y3);
}

#define VAR_W 5
#define VAR_WINDOWS 52 /* 5 * 52 = 260 >= 257 */
#define VAR_POINTS 16

/* pt = tab[mag - 1] (0 for mag = 0) by a masked scan of all VAR_POINTS entries. */
#if defined(NC_P256_X86_INTRIN)
static inline void jac_select(jac *pt, const jac *tab, limb mag) {
    __m128i want = _mm_set1_epi32((int)mag), cnt = _mm_set1_epi32(1), one = _mm_set1_epi32(1);
    __m128i a[sizeof(jac) / 16];
    for (size_t w = 0; w < sizeof(jac) / 16; w++) a[w] = _mm_setzero_si128();
    for (int j = 0; j < VAR_POINTS; j++) {
        __m128i m = _mm_cmpeq_epi32(cnt, want);
        const __m128i *e = (const __m128i *)&tab[j];
        for (size_t w = 0; w < sizeof(jac) / 16; w++)
            a[w] = _mm_or_si128(a[w], _mm_and_si128(_mm_loadu_si128(e + w), m));
        cnt = _mm_add_epi32(cnt, one);
    }
    memcpy(pt, a, sizeof *pt);
}
#else
static inline void jac_select(jac *pt, const jac *tab, limb mag) {
    memset(pt, 0, sizeof *pt);
    for (int j = 0; j < VAR_POINTS; j++) jac_cmov(pt, &tab[j], ct_eq(mag, (limb)(j + 1)));
}
#endif

/* Variable-base: r = k * p for an affine (public) point p, k < n, constant time in k. */
static void var_mul(jac *r, const aff *p, const uint8_t k[32]) {
    jac tab[VAR_POINTS], acc, pt, sum, dbl;
    uint8_t le[36];
    limb inf = ~(limb)0, neg, mag, hz, rz;
    scalar_le(le, k);
    fe_copy(tab[0].X, p->x);
    fe_copy(tab[0].Y, p->y);
    fe_copy(tab[0].Z, ONE_P);
    pt_dbl(&tab[1], &tab[0]);
    for (int j = 2; j < VAR_POINTS; j++) pt_add_affine(&tab[j], &tab[j - 1], p);
    for (int i = VAR_WINDOWS - 1; i >= 0; i--) {
        booth(scalar_bits(le, VAR_W * i - 1, VAR_W + 1), VAR_W, &neg, &mag);
        jac_select(&pt, tab, mag);
        fe_cneg(pt.Y, neg);
        limb zero = ct_is_zero_limb(mag);
        if (i == VAR_WINDOWS - 1) {
            acc = pt;
            inf = zero;
            continue;
        }
        for (int d = 0; d < VAR_W; d++) pt_dbl(&acc, &acc);
        pt_add(&sum, &acc, &pt, &hz, &rz);
        if (i == 0) { /* only the last step can meet acc == pt (k = n - 2j): double instead */
            pt_dbl(&dbl, &acc);
            jac_cmov(&sum, &dbl, hz & rz & ~inf & ~zero);
        }
        jac_cmov(&acc, &sum, ~zero & ~inf);
        jac_cmov(&acc, &pt, ~zero & inf);
        inf &= zero;
    }
    *r = acc;
    nc_wipe(le, sizeof le);
}

/* Montgomery's trick: out[i] = 1 / in[i] for n nonzero elements with one inversion (mul/inv
 * pick the modulus: fe_* for p, sc_* for n). tmp holds n elements. */
static void inv_many(limb (*out)[NL], limb (*in)[NL], limb (*tmp)[NL], size_t n,
                     void (*mul)(limb *, const limb *, const limb *), void (*inv)(limb *, const limb *)) {
    limb acc[NL], t[NL];
    if (n == 0) return;
    fe_copy(tmp[0], in[0]);
    for (size_t i = 1; i < n; i++) mul(tmp[i], tmp[i - 1], in[i]);
    inv(acc, tmp[n - 1]);
    for (size_t i = n - 1; i > 0; i--) {
        mul(t, acc, tmp[i - 1]);
        mul(acc, acc, in[i]);
        fe_copy(out[i], t);
    }
    fe_copy(out[0], acc);
}
static void fe_inv_many(limb (*out)[NL], limb (*in)[NL], limb (*tmp)[NL], size_t n) {
    inv_many(out, in, tmp, n, fe_mul, fe_inv);
}

/* Affine (normal, not Montgomery) coordinates from a point and 1/Z (Montgomery). */
static void to_affine_with(limb *x, limb *y, const jac *p, const limb *zinv) {
    limb z2[NL], t[NL];
    fe_sqr(z2, zinv);
    fe_mul(t, p->X, z2);
    fe_from_mont(x, t);
    if (y) {
        fe_mul(z2, z2, zinv);
        fe_mul(t, p->Y, z2);
        fe_from_mont(y, t);
    }
}

static void encode_point(uint8_t out[65], const limb *x, const limb *y) {
    out[0] = 4;
    fe_to_be(out + 1, x);
    fe_to_be(out + 33, y);
}

/* ---- validation and decoding (public inputs) ---- */
/* y^2 == x^3 - 3x + b for Montgomery-form x, y */
static int on_curve(const limb *x, const limb *y) {
    limb l[NL], r[NL], t[NL];
    fe_sqr(l, y);
    fe_sqr(r, x);
    fe_mul(r, r, x);
    fe_add(t, x, x);
    fe_add(t, t, x);
    fe_sub(r, r, t);
    fe_add(r, r, B_MONT);
    return fe_eq(l, r) != 0;
}

/* Uncompressed 65 bytes -> affine Montgomery point; 0 when valid. */
static int load_point(aff *out, const uint8_t pub[65]) {
    limb x[NL], y[NL];
    if (pub[0] != 4) return NC_P256_EPOINT;
    fe_from_be(x, pub + 1);
    fe_from_be(y, pub + 33);
    if (!fe_lt(x, P) || !fe_lt(y, P)) return NC_P256_EPOINT;
    fe_to_mont(out->x, x);
    fe_to_mont(out->y, y);
    if (!on_curve(out->x, out->y)) return NC_P256_EPOINT;
    return NC_P256_OK;
}

int nc_p256_point_decode(const uint8_t *in, size_t inlen, uint8_t out[65]) {
    aff a;
    if (in == NULL || inlen == 0) return NC_P256_EPOINT;
    if (inlen == 65) {
        if (load_point(&a, in) != 0) return NC_P256_EPOINT;
        memcpy(out, in, 65);
        return NC_P256_OK;
    }
    if (inlen != 33 || (in[0] != 2 && in[0] != 3)) return NC_P256_EPOINT;
    limb x[NL], xm[NL], rhs[NL], t[NL], y[NL], yn[NL];
    fe_from_be(x, in + 1);
    if (!fe_lt(x, P)) return NC_P256_EPOINT;
    fe_to_mont(xm, x);
    fe_sqr(rhs, xm);
    fe_mul(rhs, rhs, xm);
    fe_add(t, xm, xm);
    fe_add(t, t, xm);
    fe_sub(rhs, rhs, t);
    fe_add(rhs, rhs, B_MONT);
    pow_public(y, rhs, SQRT_EXP, ONE_P, fe_mul);
    fe_sqr(t, y);
    if (!fe_eq(t, rhs)) return NC_P256_EPOINT; /* x^3 - 3x + b is not a square */
    fe_from_mont(yn, y);
    if ((yn[0] & 1) != (limb)(in[0] & 1)) {
        fe_sub(yn, P, yn);
        if (fe_is_zero(y)) return NC_P256_EPOINT; /* never on P-256, but keep (p - 0) out */
    }
    out[0] = 4;
    memcpy(out + 1, in + 1, 32);
    fe_to_be(out + 33, yn);
    return NC_P256_OK;
}

int nc_p256_point_compress(const uint8_t pub[65], uint8_t out[33]) {
    aff a;
    if (load_point(&a, pub) != 0) return NC_P256_EPOINT;
    out[0] = (uint8_t)(2 | (pub[64] & 1));
    memcpy(out + 1, pub + 1, 32);
    return NC_P256_OK;
}

/* ---- scalars ---- */
/* 1 when 1 <= k < n, constant time */
static limb scalar_ok(const limb *k) { return fe_lt(k, N) & ~fe_is_zero(k) & 1; }

int nc_p256_scalar_is_valid(const uint8_t priv[32]) {
    limb k[NL];
    fe_from_be(k, priv);
    limb ok = scalar_ok(k);
    NC_DECLASSIFY(&ok, sizeof ok);
    return (int)ok;
}

/* The HKDF of nc_p256_scalar_from_seed written out around a salt-keyed HMAC context, so a batch
 * keys the constant salt once and every candidate reuses the PRK-keyed context: 6 SHA-256
 * compressions per seed instead of nc_hkdf_sha256's 8, same bytes. */
static void keygen_salt_ctx(nc_hmac_ctx *salted) {
    static const uint8_t salt[] = "NuSec P-256 keygen v1";
    nc_hmac_sha256_init(salted, salt, sizeof salt - 1);
}

static int scalar_from_seed_salted(const nc_hmac_ctx *salted, const uint8_t seed[32], uint8_t priv[32]) {
    nc_hmac_ctx h = *salted, e;
    uint8_t prk[32];
    limb k[NL];
    int rc = NC_P256_ESCALAR; /* 256 rejections in a row: probability 2^-8192 */
    nc_hmac_sha256_update(&h, seed, 32);
    nc_hmac_sha256_final(&h, prk); /* PRK = HMAC(salt, seed) */
    nc_hmac_sha256_init(&h, prk, 32);
    for (unsigned i = 0; i < 256; i++) {
        const uint8_t msg[2] = {(uint8_t)i, 1}; /* info = one byte i, then the block counter 1 */
        e = h;
        nc_hmac_sha256_update(&e, msg, sizeof msg);
        nc_hmac_sha256_final(&e, priv);
        fe_from_be(k, priv);
        limb ok = scalar_ok(k);
        NC_DECLASSIFY(&ok, sizeof ok); /* a rejected candidate says nothing about the kept one */
        if (ok) {
            rc = NC_P256_OK;
            break;
        }
    }
    nc_wipe(&h, sizeof h);
    nc_wipe(&e, sizeof e);
    nc_wipe(prk, sizeof prk);
    nc_wipe(k, sizeof k);
    return rc;
}

int nc_p256_scalar_from_seed(const uint8_t seed[32], uint8_t priv[32]) {
    nc_hmac_ctx salted;
    keygen_salt_ctx(&salted);
    return scalar_from_seed_salted(&salted, seed, priv);
}

/* k * G as a Jacobian point. NC_P256_NO_GTABLE drops the 88 KB comb table (small flash) and
 * uses the variable-base path, about 5x slower. */
#ifdef NC_P256_NO_GTABLE
static const aff G_MONT = {
    {L(0x79e730d418a9143cULL), L(0x75ba95fc5fedb601ULL), L(0x79fb732b77622510ULL), L(0x18905f76a53755c6ULL)},
    {L(0xddf25357ce95560aULL), L(0x8b4ab8e4ba19e45cULL), L(0xd2e88688dd21f325ULL), L(0x8571ff1825885d85ULL)}};
static void base_mul(jac *r, const uint8_t k[32]) { var_mul(r, &G_MONT, k); }
#else
static void base_mul(jac *r, const uint8_t k[32]) { comb_mul(r, nc_p256_g_comb, k); }
#endif

/* out[i] = k_i * G (affine, Montgomery form) for m <= COMB_BATCH scalars k_i < n, stride bytes
 * apart; k_i = 0 gives the (R, R) placeholder. With the table: the batched affine comb. Without:
 * variable-base multiplications and one shared inversion. Constant time in every k_i. */
static void base_mul_batch(aff *out, const uint8_t *ks, size_t stride, size_t m) {
#ifdef NC_P256_NO_GTABLE
    jac pts[COMB_BATCH];
    limb zs[COMB_BATCH][NL], inv[COMB_BATCH][NL], tmp[COMB_BATCH][NL], z2[NL];
    for (size_t i = 0; i < m; i++) {
        base_mul(&pts[i], ks + stride * i);
        limb inf = fe_is_zero(pts[i].Z);
        fe_cmov(pts[i].X, ONE_P, inf);
        fe_cmov(pts[i].Y, ONE_P, inf);
        fe_cmov(pts[i].Z, ONE_P, inf);
        fe_copy(zs[i], pts[i].Z);
    }
    fe_inv_many(inv, zs, tmp, m);
    for (size_t i = 0; i < m; i++) {
        fe_sqr(z2, inv[i]);
        fe_mul(out[i].x, pts[i].X, z2);
        fe_mul(z2, z2, inv[i]);
        fe_mul(out[i].y, pts[i].Y, z2);
    }
    nc_wipe(pts, sizeof pts);
#else
    comb_mul_batch(out, nc_p256_g_comb, ks, stride, m);
#endif
}

static void jac_to_pub(uint8_t pub[65], const jac *p, const limb *zinv) {
    limb x[NL], y[NL];
    to_affine_with(x, y, p, zinv);
    encode_point(pub, x, y);
}

int nc_p256_public_key(const uint8_t priv[32], uint8_t pub[65]) {
    jac r;
    limb zinv[NL];
    if (!nc_p256_scalar_is_valid(priv)) return NC_P256_ESCALAR;
    base_mul(&r, priv);
    fe_inv(zinv, r.Z);
    jac_to_pub(pub, &r, zinv);
    return NC_P256_OK;
}

int nc_p256_keygen(const uint8_t seed[32], uint8_t priv[32], uint8_t pub[65]) {
    int rc = nc_p256_scalar_from_seed(seed, priv);
    if (rc != 0) return rc;
    return nc_p256_public_key(priv, pub);
}

#define KG_CHUNK 64

/* Seeds one by one, then the chunk's k * G in one base_mul_batch. */
size_t nc_p256_keygen_batch(const uint8_t *seeds, size_t n, uint8_t *privs, uint8_t *pubs) {
    aff pts[COMB_BATCH];
    limb x[NL], y[NL];
    nc_hmac_ctx salted;
    size_t failed = 0;
    keygen_salt_ctx(&salted);
    for (size_t base = 0; base < n; base += COMB_BATCH) {
        size_t m = n - base < COMB_BATCH ? n - base : COMB_BATCH;
        for (size_t i = 0; i < m; i++) {
            uint8_t *priv = privs + 32 * (base + i);
            if (scalar_from_seed_salted(&salted, seeds + 32 * (base + i), priv) != 0) {
                failed++;
                memset(priv, 0, 32); /* k = 0: the batch returns the (1, 1) placeholder */
            }
        }
        base_mul_batch(pts, privs + 32 * base, 32, m);
        for (size_t i = 0; i < m; i++) {
            fe_from_mont(x, pts[i].x);
            fe_from_mont(y, pts[i].y);
            encode_point(pubs + 65 * (base + i), x, y);
        }
    }
    nc_wipe(pts, sizeof pts);
    return failed;
}

/* ---- ECDSA ---- */
/* e = digest mod n (digest < 2^256 < 2n, so one conditional subtraction) */
static void digest_to_scalar(limb *e, const uint8_t digest[32]) {
    limb t[NL];
    fe_from_be(e, digest);
    mod_sub(t, e, N, N); /* e - n, or e when e < n... */
    /* mod_sub adds n back when it borrowed, i.e. when e < n: t == e then; else t = e - n */
    fe_copy(e, t);
}

typedef struct {
    uint8_t k[32], v[32];
} rfc6979;

static void hmac_kv(uint8_t out[32], const uint8_t key[32], const uint8_t *v, uint8_t sep,
                    const uint8_t *x, const uint8_t *h, const uint8_t *extra, size_t extralen) {
    nc_hmac_ctx c;
    nc_hmac_sha256_init(&c, key, 32);
    nc_hmac_sha256_update(&c, v, 32);
    if (x) {
        nc_hmac_sha256_update(&c, &sep, 1);
        nc_hmac_sha256_update(&c, x, 32);
        nc_hmac_sha256_update(&c, h, 32);
        if (extralen) nc_hmac_sha256_update(&c, extra, extralen);
    }
    nc_hmac_sha256_final(&c, out);
    nc_wipe(&c, sizeof c);
}

/* RFC 6979 section 3.2 steps b-f (qlen = hlen = 256, so bits2int is the identity). */
static void rfc6979_init(rfc6979 *st, const uint8_t x[32], const uint8_t h1[32], const uint8_t *extra,
                         size_t extralen) {
    uint8_t h[32];
    limb e[NL];
    digest_to_scalar(e, h1);
    fe_to_be(h, e); /* bits2octets */
    memset(st->v, 1, 32);
    memset(st->k, 0, 32);
    hmac_kv(st->k, st->k, st->v, 0, x, h, extra, extralen);
    hmac_kv(st->v, st->k, st->v, 0, NULL, NULL, NULL, 0);
    hmac_kv(st->k, st->k, st->v, 1, x, h, extra, extralen);
    hmac_kv(st->v, st->k, st->v, 0, NULL, NULL, NULL, 0);
}

static void rfc6979_retry(rfc6979 *st) {
    static const uint8_t zero = 0;
    nc_hmac_ctx c;
    nc_hmac_sha256_init(&c, st->k, 32);
    nc_hmac_sha256_update(&c, st->v, 32);
    nc_hmac_sha256_update(&c, &zero, 1);
    nc_hmac_sha256_final(&c, st->k);
    hmac_kv(st->v, st->k, st->v, 0, NULL, NULL, NULL, 0);
}

/* Step h: next candidate k in [1, n-1]. */
static void rfc6979_next(rfc6979 *st, uint8_t out[32]) {
    limb k[NL];
    for (;;) {
        hmac_kv(st->v, st->k, st->v, 0, NULL, NULL, NULL, 0);
        fe_from_be(k, st->v);
        limb ok = scalar_ok(k);
        NC_DECLASSIFY(&ok, sizeof ok); /* rejected candidates are discarded */
        if (ok) break;
        rfc6979_retry(st);
    }
    memcpy(out, st->v, 32);
    nc_wipe(k, sizeof k);
}


/* Second half of signing once R = k*G is affine: r = x mod n, s = (e + r d) / k.
 * kinv is 1/k in Montgomery form (mod n). Returns 1 when r, s are both nonzero. */
static int sign_finish(uint8_t sig[64], const limb *xr, const limb *kinv, const limb *d_mont,
                       const uint8_t digest[32]) {
    limb r[NL], e[NL], t[NL], s[NL];
    fe_copy(r, xr);
    mod_sub(t, r, N, N);
    fe_copy(r, t);
    fe_to_be(sig, r);
    NC_DECLASSIFY(sig, 32); /* r is public */
    NC_DECLASSIFY(r, sizeof r);
    digest_to_scalar(e, digest);
    sc_mul(t, r, d_mont); /* r d */
    sc_add(t, t, e);
    sc_mul(s, t, kinv);
    fe_to_be(sig + 32, s);
    NC_DECLASSIFY(sig + 32, 32); /* s is public */
    NC_DECLASSIFY(s, sizeof s);
    int ok = !fe_is_zero(r) && !fe_is_zero(s);
    nc_wipe(t, sizeof t);
    return ok;
}

int nc_p256_sign(const uint8_t priv[32], const uint8_t digest[32], const uint8_t *extra, size_t extralen,
                 uint8_t sig[64]) {
    rfc6979 st;
    uint8_t kb[32];
    limb d[NL], d_mont[NL], k[NL], kinv[NL], zinv[NL], x[NL];
    jac R;
    if (!nc_p256_scalar_is_valid(priv)) return NC_P256_ESCALAR;
    fe_from_be(d, priv);
    sc_mul(d_mont, d, R2_N);
    rfc6979_init(&st, priv, digest, extra, extralen);
    for (;;) {
        rfc6979_next(&st, kb);
        base_mul(&R, kb);
        fe_inv(zinv, R.Z);
        to_affine_with(x, NULL, &R, zinv);
        fe_from_be(k, kb);
        sc_mul(k, k, R2_N);
        sc_inv(kinv, k);
        if (sign_finish(sig, x, kinv, d_mont, digest)) break;
        rfc6979_retry(&st);
    }
    nc_wipe(&st, sizeof st);
    nc_wipe(kb, sizeof kb);
    nc_wipe(d, sizeof d);
    nc_wipe(d_mont, sizeof d_mont);
    nc_wipe(k, sizeof k);
    nc_wipe(kinv, sizeof kinv);
    return NC_P256_OK;
}

/* Half a comb batch on the host keeps the stack near 100 KB; the affine comb still pays at 128. */
#if NC_P256_LIMB_BITS == 64
#define SIGN_CHUNK (COMB_BATCH / 2)
#else
#define SIGN_CHUNK COMB_BATCH
#endif

size_t nc_p256_sign_batch(const uint8_t *privs, size_t priv_stride, const uint8_t *digests,
                          const uint8_t *extra, size_t extralen, size_t n, uint8_t *sigs, uint8_t *status) {
    aff pts[SIGN_CHUNK];
    limb ks[SIGN_CHUNK][NL], kinv[SIGN_CHUNK][NL];
    limb tmp[SIGN_CHUNK][NL], x[NL], dm[SIGN_CHUNK][NL];
    uint8_t kbs[SIGN_CHUNK][32];
    rfc6979 st[SIGN_CHUNK];
    uint8_t ok[SIGN_CHUNK];
    size_t failed = 0;
    for (size_t base = 0; base < n; base += SIGN_CHUNK) {
        size_t m = n - base < SIGN_CHUNK ? n - base : SIGN_CHUNK;
        for (size_t i = 0; i < m; i++) {
            const uint8_t *priv = privs + priv_stride * (base + i);
            const uint8_t *dg = digests + 32 * (base + i);
            uint8_t kb[32];
            ok[i] = (uint8_t)nc_p256_scalar_is_valid(priv);
            if (!ok[i]) { /* placeholder k = 1 keeps the shared inversions well defined */
                memset(kb, 0, 32);
                kb[31] = 1;
                memset(dm[i], 0, sizeof dm[i]);
            } else {
                limb d[NL];
                fe_from_be(d, priv);
                sc_mul(dm[i], d, R2_N);
                rfc6979_init(&st[i], priv, dg, extra, extralen);
                rfc6979_next(&st[i], kb);
                nc_wipe(d, sizeof d);
            }
            memcpy(kbs[i], kb, 32);
            fe_from_be(ks[i], kb);
            sc_mul(ks[i], ks[i], R2_N);
            nc_wipe(kb, sizeof kb);
        }
        base_mul_batch(pts, kbs[0], 32, m);
        inv_many(kinv, ks, tmp, m, sc_mul, sc_inv); /* shared inversion of the nonces, mod n */
        for (size_t i = 0; i < m; i++) {
            uint8_t *sig = sigs + 64 * (base + i);
            const uint8_t *dg = digests + 32 * (base + i);
            if (!ok[i]) {
                memset(sig, 0, 64);
                if (status) status[base + i] = (uint8_t)-NC_P256_ESCALAR;
                failed++;
                continue;
            }
            fe_from_mont(x, pts[i].x);
            if (!sign_finish(sig, x, kinv[i], dm[i], dg)) {
                /* r or s was 0 (probability ~2^-256): redo this one on the slow path */
                uint8_t kb[32];
                jac R;
                limb k1[NL], ki[NL], zi[NL];
                do {
                    rfc6979_retry(&st[i]);
                    rfc6979_next(&st[i], kb);
                    base_mul(&R, kb);
                    fe_inv(zi, R.Z);
                    to_affine_with(x, NULL, &R, zi);
                    fe_from_be(k1, kb);
                    sc_mul(k1, k1, R2_N);
                    sc_inv(ki, k1);
                } while (!sign_finish(sig, x, ki, dm[i], dg));
            }
            if (status) status[base + i] = 0;
        }
        nc_wipe(st, sizeof st);
        nc_wipe(kbs, sizeof kbs);
        nc_wipe(pts, sizeof pts);
        nc_wipe(ks, sizeof ks);
        nc_wipe(kinv, sizeof kinv);
        nc_wipe(dm, sizeof dm);
        nc_wipe(tmp, sizeof tmp);
    }
    return failed;
}

/* Checks x(R) mod n == r without leaving Jacobian coordinates. */
static int check_r(const jac *R, const limb *r) {
    limb z2[NL], rm[NL], t[NL];
    if (fe_is_zero(R->Z)) return 0;
    fe_sqr(z2, R->Z);
    fe_to_mont(rm, r);
    fe_mul(t, rm, z2);
    if (fe_eq(t, R->X)) return 1;
    /* x(R) in [n, p): r + n < p */
    limb rn[NL];
    dlimb c = 0;
    for (int i = 0; i < NL; i++) {
        c += (dlimb)r[i] + N[i];
        rn[i] = (limb)c;
        c >>= LB;
    }
    if (c || !fe_lt(rn, P)) return 0;
    fe_to_mont(rm, rn);
    fe_mul(t, rm, z2);
    return fe_eq(t, R->X) != 0;
}

/* Parse and range-check (r, s); s goes to Montgomery form for a (shared) inversion. */
static int sig_parse(limb *r, limb *s_mont, const uint8_t sig[64]) {
    limb s[NL];
    fe_from_be(r, sig);
    fe_from_be(s, sig + 32);
    if (!scalar_ok(r) || !scalar_ok(s)) return 0;
    sc_mul(s_mont, s, R2_N);
    return 1;
}

/* u1 = e w, u2 = r w (w = 1/s, Montgomery form), as big-endian bytes. */
static void sig_u(uint8_t u1b[32], uint8_t u2b[32], const limb *r, const limb *w, const uint8_t digest[32]) {
    limb e[NL], u[NL];
    digest_to_scalar(e, digest);
    sc_mul(u, e, w);
    fe_to_be(u1b, u);
    sc_mul(u, r, w);
    fe_to_be(u2b, u);
}

/* r = k * p in variable time (width-5 wNAF): for PUBLIC scalars only, i.e. verification. */
static void wnaf_mul(jac *r, const aff *p, const uint8_t kb[32]) {
    enum { W = 5, LEN = 258 };
    int8_t naf[LEN];
    uint8_t le[36];
    jac tab[8], twop, acc, neg;
    int carry = 0, top = -1;
    scalar_le(le, kb);
    memset(naf, 0, sizeof naf);
    for (int bit = 0; bit < LEN;) {
        if ((int)((le[bit / 8] >> (bit % 8)) & 1) == carry) {
            bit++;
            continue;
        }
        int now = LEN - bit < W ? LEN - bit : W;
        int word = (int)scalar_bits(le, bit, now) + carry;
        carry = (word >> (W - 1)) & 1;
        word -= carry << W;
        naf[bit] = (int8_t)word;
        top = bit;
        bit += now;
    }
    fe_copy(tab[0].X, p->x);
    fe_copy(tab[0].Y, p->y);
    fe_copy(tab[0].Z, ONE_P);
    pt_dbl(&twop, &tab[0]);
    for (int j = 1; j < 8; j++) pt_add_public(&tab[j], &tab[j - 1], &twop);
    memset(&acc, 0, sizeof acc);
    for (int i = top; i >= 0; i--) {
        pt_dbl(&acc, &acc);
        int d = naf[i];
        if (d > 0) {
            pt_add_public(&acc, &acc, &tab[(d - 1) / 2]);
        } else if (d < 0) {
            neg = tab[(-d - 1) / 2];
            fe_sub(neg.Y, P, neg.Y);
            pt_add_public(&acc, &acc, &neg);
        }
    }
    *r = acc;
}

/* u1 G + u2 Q (Q as an affine point, or as its comb table) has x = r mod n. */
static int verify_point(const aff *q, const limb *qtable, const uint8_t u1[32], const uint8_t u2[32],
                        const limb *r) {
    jac a, b;
    base_mul(&a, u1);
    if (qtable)
        comb_mul(&b, qtable, u2);
    else
        wnaf_mul(&b, q, u2);
    pt_add_public(&a, &a, &b);
    return check_r(&a, r);
}

int nc_p256_verify(const uint8_t pub[65], const uint8_t digest[32], const uint8_t sig[64]) {
    aff q;
    limb r[NL], sm[NL], w[NL];
    uint8_t u1[32], u2[32];
    if (load_point(&q, pub) != 0) return NC_P256_EPOINT;
    if (!sig_parse(r, sm, sig)) return NC_P256_ESIG;
    sc_inv(w, sm);
    sig_u(u1, u2, r, w, digest);
    return verify_point(&q, NULL, u1, u2, r) ? NC_P256_OK : NC_P256_ESIG;
}

#define VERIFY_CHUNK 32

/* Batch verification with one shared inversion of the s values per chunk; either pubs (stride)
 * or a comb table for one key. */
static size_t verify_many(const uint8_t *pubs, size_t pub_stride, const limb *table, const uint8_t *digests,
                          const uint8_t *sigs, size_t n, uint8_t *status) {
    limb r[VERIFY_CHUNK][NL], sm[VERIFY_CHUNK][NL], w[VERIFY_CHUNK][NL], tmp[VERIFY_CHUNK][NL];
    int ok[VERIFY_CHUNK];
    size_t failed = 0;
    for (size_t base = 0; base < n; base += VERIFY_CHUNK) {
        size_t m = n - base < VERIFY_CHUNK ? n - base : VERIFY_CHUNK;
        for (size_t i = 0; i < m; i++) {
            ok[i] = sig_parse(r[i], sm[i], sigs + 64 * (base + i));
            if (!ok[i]) fe_copy(sm[i], ONE_N); /* keeps the shared inversion defined */
        }
        inv_many(w, sm, tmp, m, sc_mul, sc_inv);
        for (size_t i = 0; i < m; i++) {
            int rc = NC_P256_ESIG;
            aff q;
            if (!table && load_point(&q, pubs + pub_stride * (base + i)) != 0) {
                rc = NC_P256_EPOINT;
            } else if (ok[i]) {
                uint8_t u1[32], u2[32];
                sig_u(u1, u2, r[i], w[i], digests + 32 * (base + i));
                if (verify_point(&q, table, u1, u2, r[i])) rc = NC_P256_OK;
            }
            if (status) status[base + i] = (uint8_t)-rc;
            failed += rc != 0;
        }
    }
    return failed;
}

size_t nc_p256_verify_batch(const uint8_t *pubs, size_t pub_stride, const uint8_t *digests,
                            const uint8_t *sigs, size_t n, uint8_t *status) {
    return verify_many(pubs, pub_stride, NULL, digests, sigs, n, status);
}

/* ---- ECDH ---- */
int nc_p256_ecdh(const uint8_t priv[32], const uint8_t pub[65], uint8_t secret[32]) {
    aff q;
    jac r;
    limb zinv[NL], x[NL];
    if (load_point(&q, pub) != 0) return NC_P256_EPOINT;
    if (!nc_p256_scalar_is_valid(priv)) return NC_P256_ESCALAR;
    var_mul(&r, &q, priv);
    fe_inv(zinv, r.Z);
    to_affine_with(x, NULL, &r, zinv);
    fe_to_be(secret, x);
    return NC_P256_OK;
}

size_t nc_p256_ecdh_batch(const uint8_t *privs, size_t priv_stride, const uint8_t *pubs, size_t pub_stride,
                          size_t n, uint8_t *secrets, uint8_t *status) {
    jac pts[KG_CHUNK];
    limb zs[KG_CHUNK][NL], inv[KG_CHUNK][NL], tmp[KG_CHUNK][NL], x[NL];
    int rcs[KG_CHUNK];
    size_t failed = 0;
    for (size_t base = 0; base < n; base += KG_CHUNK) {
        size_t m = n - base < KG_CHUNK ? n - base : KG_CHUNK;
        for (size_t i = 0; i < m; i++) {
            const uint8_t *priv = privs + priv_stride * (base + i);
            aff q;
            rcs[i] = load_point(&q, pubs + pub_stride * (base + i));
            if (rcs[i] == 0 && !nc_p256_scalar_is_valid(priv)) rcs[i] = NC_P256_ESCALAR;
            if (rcs[i] == 0)
                var_mul(&pts[i], &q, priv);
            else
                fe_copy(pts[i].Z, ONE_P);
            fe_copy(zs[i], pts[i].Z);
        }
        fe_inv_many(inv, zs, tmp, m);
        for (size_t i = 0; i < m; i++) {
            uint8_t *out = secrets + 32 * (base + i);
            if (rcs[i] != 0) {
                memset(out, 0, 32);
                failed++;
            } else {
                to_affine_with(x, NULL, &pts[i], inv[i]);
                fe_to_be(out, x);
            }
            if (status) status[base + i] = (uint8_t)-rcs[i];
        }
    }
    return failed;
}

/* ---- per-public-key comb tables ---- */
size_t nc_p256_table_size(void) { return sizeof(limb) * NC_P256_COMB_LIMBS; }

int nc_p256_table_init(void *table, const uint8_t pub[65]) {
    aff q;
    jac win[NC_P256_COMB_POINTS], base;
    limb zs[NC_P256_COMB_POINTS][NL], inv[NC_P256_COMB_POINTS][NL], tmp[NC_P256_COMB_POINTS][NL];
    limb *out = (limb *)table;
    if (load_point(&q, pub) != 0) return NC_P256_EPOINT;
    fe_copy(base.X, q.x);
    fe_copy(base.Y, q.y);
    fe_copy(base.Z, ONE_P);
    for (int i = 0; i < NC_P256_COMB_WINDOWS; i++) {
        win[0] = base;
        pt_dbl(&win[1], &base);
        for (int j = 2; j < NC_P256_COMB_POINTS; j++) pt_add_public(&win[j], &win[j - 1], &base);
        for (int j = 0; j < NC_P256_COMB_POINTS; j++) fe_copy(zs[j], win[j].Z);
        fe_inv_many(inv, zs, tmp, NC_P256_COMB_POINTS);
        for (int j = 0; j < NC_P256_COMB_POINTS; j++) {
            limb z2[NL], *e = out + ((size_t)i * NC_P256_COMB_POINTS + (size_t)j) * 2 * NL;
            fe_sqr(z2, inv[j]);
            fe_mul(e, win[j].X, z2);
            fe_mul(z2, z2, inv[j]);
            fe_mul(e + NL, win[j].Y, z2);
        }
        for (int d = 0; d < NC_P256_COMB_W; d++) pt_dbl(&base, &base);
    }
    return NC_P256_OK;
}

size_t nc_p256_ecdh_fixed_batch(const void *table, const uint8_t *privs, size_t n, uint8_t *secrets,
                                uint8_t *status) {
    aff pts[COMB_BATCH];
    uint8_t ks[COMB_BATCH][32], ok[COMB_BATCH];
    limb x[NL];
    size_t failed = 0;
    for (size_t base = 0; base < n; base += COMB_BATCH) {
        size_t m = n - base < COMB_BATCH ? n - base : COMB_BATCH;
        for (size_t i = 0; i < m; i++) {
            const uint8_t *priv = privs + 32 * (base + i);
            ok[i] = (uint8_t)nc_p256_scalar_is_valid(priv);
            if (ok[i])
                memcpy(ks[i], priv, 32);
            else
                memset(ks[i], 0, 32); /* k = 0 keeps the batch well defined; the item reports an error */
        }
        comb_mul_batch(pts, (const limb *)table, ks[0], 32, m);
        for (size_t i = 0; i < m; i++) {
            uint8_t *out = secrets + 32 * (base + i);
            if (!ok[i]) {
                memset(out, 0, 32);
                failed++;
                if (status) status[base + i] = (uint8_t)-NC_P256_ESCALAR;
                continue;
            }
            fe_from_mont(x, pts[i].x);
            fe_to_be(out, x);
            if (status) status[base + i] = 0;
        }
    }
    nc_wipe(ks, sizeof ks);
    nc_wipe(pts, sizeof pts);
    nc_wipe(x, sizeof x);
    return failed;
}

size_t nc_p256_verify_fixed_batch(const void *table, const uint8_t *digests, const uint8_t *sigs, size_t n,
                                  uint8_t *status) {
    return verify_many(NULL, 0, (const limb *)table, digests, sigs, n, status);
}
