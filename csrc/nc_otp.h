/* OTP image packing and strict parsing for the layout in docs/otp-layout.md (version 1).
 * Portable C99, no allocation: the same file builds for the host (cffi) and for Cortex-M, so the
 * board and the host agree byte for byte on what an image is. */
#ifndef NC_OTP_H
#define NC_OTP_H

#include <stddef.h>
#include <stdint.h>

#define NC_OTP_SIZE 2048
#define NC_OTP_ENTRY_SIZE 8
#define NC_OTP_VERSION 1

/* Byte offsets of the fields (entry n starts at 8n). */
#define NC_OTP_OFF_MAGIC 0x000
#define NC_OTP_OFF_VERSION 0x004
#define NC_OTP_OFF_FLAGS 0x005
#define NC_OTP_OFF_HDR_RSVD 0x006 /* 2 bytes, blank (see docs: board-cert length comes from its DER) */
#define NC_OTP_OFF_ROOT_PUB 0x008
#define NC_OTP_OFF_ROOT_CERT_SHA 0x048
#define NC_OTP_OFF_ICA_CERT_SHA 0x068
#define NC_OTP_OFF_SB_PUB 0x088
#define NC_OTP_OFF_UID 0x0C8
#define NC_OTP_OFF_UID_RSVD 0x0D4
#define NC_OTP_OFF_POLICY 0x0D8
#define NC_OTP_OFF_ICA_LEN 0x0DC
#define NC_OTP_OFF_RSVD1 0x0E0
#define NC_OTP_OFF_BOARD_CERT 0x100
#define NC_OTP_OFF_ICA_CERT 0x400
#define NC_OTP_OFF_RSVD2 0x700
#define NC_OTP_OFF_DIGEST 0x7E0

#define NC_OTP_PUB_LEN 64
#define NC_OTP_UID_LEN 12
#define NC_OTP_CERT_MAX 768

#define NC_OTP_FLAG_BATCH 0x01u         /* secure-boot key made by a bulk batch job */
#define NC_OTP_FLAGS_KNOWN 0x01u
#define NC_OTP_POLICY_SECURE_BOOT 0x01u /* secure boot required */
#define NC_OTP_POLICY_DEBUG_LOCK 0x02u  /* lock debug access on seal */
#define NC_OTP_POLICY_KNOWN 0x03u

/* Parse options. */
#define NC_OTP_PARSE_SKIP_DIGEST 0x01u /* report digest_ok instead of failing on a mismatch */

/* Error codes (negative); nc_otp_strerror gives the one-line message. */
#define NC_OTP_OK 0
#define NC_OTP_E_ARG (-1)
#define NC_OTP_E_SIZE (-2)
#define NC_OTP_E_MAGIC (-3)
#define NC_OTP_E_VERSION (-4)
#define NC_OTP_E_FLAGS (-5)
#define NC_OTP_E_POLICY (-6)
#define NC_OTP_E_ICA_LEN (-7)
#define NC_OTP_E_ICA_DER (-8)
#define NC_OTP_E_BOARD_DER (-9)
#define NC_OTP_E_NOT_BLANK (-10)
#define NC_OTP_E_DIGEST (-11)

/* Inputs of one image. Pointers to fixed-size fields must not be NULL; board_cert may be NULL
 * when board_cert_len is 0 (bulk images are made before the board has a certificate). */
typedef struct {
    const uint8_t *root_pub;         /* 64: RootCA X||Y */
    const uint8_t *root_cert_sha256; /* 32 */
    const uint8_t *ica_cert_sha256;  /* 32 */
    const uint8_t *secure_boot_pub;  /* 64: ROTPK X||Y */
    const uint8_t *uid;              /* 12 */
    uint32_t policy;
    uint32_t flags;
    const uint8_t *ica_cert;
    size_t ica_cert_len;             /* 1..768, one DER SEQUENCE */
    const uint8_t *board_cert;
    size_t board_cert_len;           /* 0..768, one DER SEQUENCE when not 0 */
} nc_otp_fields;

/* What nc_otp_parse found; fixed-offset fields are read from the image itself. */
typedef struct {
    uint32_t version;
    uint32_t flags;
    uint32_t policy;
    uint32_t ica_cert_len;
    uint32_t board_cert_len;
    int32_t digest_ok;
    uint32_t err_offset; /* first offending byte for a failed check, else 0 */
} nc_otp_info;

int nc_otp_pack(const nc_otp_fields *f, uint8_t *out);

/* n images at once: shared material from *shared (its secure_boot_pub/uid are ignored), the
 * per-board secure-boot keys (n*64) and UIDs (n*12) from contiguous buffers; n*2048 image bytes
 * and, if digests is not NULL, n*32 image digests out. */
int nc_otp_pack_batch(const nc_otp_fields *shared, const uint8_t *sb_pubs, const uint8_t *uids, size_t n,
                      uint8_t *out, uint8_t *digests);

/* Strictly check len bytes at img; fills *info (also on most failures, for diagnostics). */
int nc_otp_parse(const uint8_t *img, size_t len, uint32_t options, nc_otp_info *info);

/* The image digest: SHA-256(bytes 0x400-0x6FF || bytes 0x000-0x0FF) of a 2048-byte image. */
void nc_otp_digest(const uint8_t *img, uint8_t *out);

const char *nc_otp_strerror(int code);

/* Per-board key seeds for a bulk batch, one HKDF-Expand block each (RFC 5869):
 * seed_i = HMAC-SHA256(prk, info || u64be(start + i) || uid_i || 0x01), for i in [0, n).
 * uids holds n * uidlen bytes (uidlen may be 0). The HMAC key schedule is computed once. */
int nc_otp_board_seeds(const uint8_t *prk, const uint8_t *info, size_t infolen, uint64_t start,
                       const uint8_t *uids, size_t uidlen, size_t n, uint8_t *out);

#endif
