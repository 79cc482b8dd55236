/* P-256 internals shared by nc_p256.c and the generated base-point table: the limb width and
 * the comb geometry. Nothing here is part of the public API. */
#ifndef NC_P256_LIMB_H
#define NC_P256_LIMB_H

#include <stdint.h>

#if defined(__SIZEOF_INT128__) && !defined(NC_P256_LIMB32)
#define NC_P256_LIMB_BITS 64
typedef uint64_t nc_p256_limb;
/* One 64-bit constant as limbs, little-endian limb order. */
#define NC_P256_L(x) ((nc_p256_limb)(x))
#else
#define NC_P256_LIMB_BITS 32
typedef uint32_t nc_p256_limb;
#define NC_P256_L(x) ((nc_p256_limb)((x) & 0xffffffffu)), ((nc_p256_limb)((uint64_t)(x) >> 32))
#endif
#define NC_P256_NLIMBS (256 / NC_P256_LIMB_BITS)

/* Fixed-base comb: signed (Booth) windows of NC_P256_COMB_W bits, NC_P256_COMB_WINDOWS of them
 * cover 257 bits; window i holds j * 2^(W*i) * P for j = 1..2^(W-1), affine, Montgomery form. */
#define NC_P256_COMB_W 6
#define NC_P256_COMB_WINDOWS ((257 + NC_P256_COMB_W - 1) / NC_P256_COMB_W)
#define NC_P256_COMB_POINTS (1 << (NC_P256_COMB_W - 1))
/* limbs in the whole table: windows * points * (x, y) */
#define NC_P256_COMB_LIMBS (NC_P256_COMB_WINDOWS * NC_P256_COMB_POINTS * 2 * NC_P256_NLIMBS)

#endif
