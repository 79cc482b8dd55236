/* AES-256 key wrap with padding (RFC 5649 / NIST SP 800-38F KWP), batched.
 *
 * Bulk OTP runs wrap one private key per board under one batch data-encryption key; doing the
 * 6*n AES calls per key from Python costs more than generating the key, so the wrap lives here.
 * x86-64 uses AES-NI when the CPU has it (constant time by construction); elsewhere a portable,
 * table-free constant-time AES is used (slow, but no secret-indexed lookups). */
#ifndef NC_KW_H
#define NC_KW_H

#include <stddef.h>
#include <stdint.h>

#define NC_KW_OK 0
#define NC_KW_EARG (-1)
#define NC_KW_MAX_INPUT 4096

/* Output length for an inlen-byte secret: round up to 8, plus the 8-byte integrity block. */
size_t nc_kwp_wrapped_len(size_t inlen);

/* n secrets of inlen bytes each (contiguous) wrapped under key; n * nc_kwp_wrapped_len(inlen)
 * bytes out. 0 on success, NC_KW_EARG for inlen 0 or > NC_KW_MAX_INPUT or NULL buffers. */
int nc_aes256_kwp_wrap_batch(const uint8_t key[32], const uint8_t *in, size_t inlen, size_t n, uint8_t *out);

/* One AES-256 block encryption (known-answer tests). */
void nc_aes256_encrypt_block(const uint8_t key[32], const uint8_t in[16], uint8_t out[16]);

/* 1 if AES-NI is used. force_portable != 0 selects the portable code (tests compare both). */
int nc_kw_uses_aesni(void);
void nc_kw_force_portable(int force_portable);

#endif
