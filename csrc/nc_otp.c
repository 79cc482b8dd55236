/* OTP image v1: packing and strict parsing (docs/otp-layout.md).
 *
 * The parser trusts nothing in the image: every length is checked against its area before it
 * is used, every byte not owned by a field must be blank (0xFF), and the digest is recomputed.
 * It never reads outside [img, img + len). */
#include "nc_otp.h"

#include <string.h>

#include "nc_hash.h"

static const uint8_t MAGIC[4] = {'N', 'S', 'O', '1'};

/* The digest hashes the ICA area first, then bytes 0x000-0x0FF: the ICA area and the first 128
 * bytes (header, RootCA key, both certificate hashes) are constant through a batch, so batch
 * packing hashes those 896 bytes once and copies the midstate; per board only 0x080-0x0FF and
 * the padding remain (3 compressions instead of 17). */
#define MIDSTATE_LEN 128

static void put_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Offset of the first non-0xFF byte in [p, p+len), or len if all blank. */
static size_t first_nonblank(const uint8_t *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0xFF) return i;
    return len;
}

/* Total length (header + content) of the one DER SEQUENCE at p, which has avail bytes; 0 if p
 * does not start with a minimally encoded SEQUENCE header that fits in avail. */
static size_t der_sequence_len(const uint8_t *p, size_t avail) {
    size_t hdr, content;
    if (avail < 2 || p[0] != 0x30) return 0;
    if (p[1] < 0x80) {
        hdr = 2;
        content = p[1];
    } else if (p[1] == 0x81) {
        if (avail < 3 || p[2] < 0x80) return 0;
        hdr = 3;
        content = p[2];
    } else if (p[1] == 0x82) {
        if (avail < 4 || p[2] == 0) return 0;
        hdr = 4;
        content = (size_t)p[2] << 8 | p[3];
    } else {
        return 0;
    }
    if (content > avail - hdr) return 0;
    return hdr + content;
}

void nc_otp_digest(const uint8_t *img, uint8_t *out) {
    nc_sha256_ctx ctx;
    nc_sha256_init(&ctx);
    nc_sha256_update(&ctx, img + NC_OTP_OFF_ICA_CERT, NC_OTP_CERT_MAX);
    nc_sha256_update(&ctx, img, 0x100);
    nc_sha256_final(&ctx, out);
}

static int check_fields(const nc_otp_fields *f, int per_board) {
    if (!f || !f->root_pub || !f->root_cert_sha256 || !f->ica_cert_sha256 || !f->ica_cert)
        return NC_OTP_E_ARG;
    if (per_board && (!f->secure_boot_pub || !f->uid)) return NC_OTP_E_ARG;
    if (f->flags & ~NC_OTP_FLAGS_KNOWN) return NC_OTP_E_FLAGS;
    if (f->policy & ~NC_OTP_POLICY_KNOWN) return NC_OTP_E_POLICY;
    if (f->ica_cert_len == 0 || f->ica_cert_len > NC_OTP_CERT_MAX) return NC_OTP_E_ICA_LEN;
    if (der_sequence_len(f->ica_cert, f->ica_cert_len) != f->ica_cert_len) return NC_OTP_E_ICA_DER;
    if (f->board_cert_len > NC_OTP_CERT_MAX) return NC_OTP_E_BOARD_DER;
    if (f->board_cert_len) {
        if (!f->board_cert) return NC_OTP_E_ARG;
        if (der_sequence_len(f->board_cert, f->board_cert_len) != f->board_cert_len) return NC_OTP_E_BOARD_DER;
    }
    return NC_OTP_OK;
}

/* Everything except the secure-boot key, the UID and the digest. */
static void pack_shared(const nc_otp_fields *f, uint8_t *out) {
    memset(out, 0xFF, NC_OTP_SIZE);
    memcpy(out + NC_OTP_OFF_MAGIC, MAGIC, 4);
    out[NC_OTP_OFF_VERSION] = NC_OTP_VERSION;
    out[NC_OTP_OFF_FLAGS] = (uint8_t)f->flags;
    memcpy(out + NC_OTP_OFF_ROOT_PUB, f->root_pub, NC_OTP_PUB_LEN);
    memcpy(out + NC_OTP_OFF_ROOT_CERT_SHA, f->root_cert_sha256, 32);
    memcpy(out + NC_OTP_OFF_ICA_CERT_SHA, f->ica_cert_sha256, 32);
    put_u32le(out + NC_OTP_OFF_POLICY, f->policy);
    put_u32le(out + NC_OTP_OFF_ICA_LEN, (uint32_t)f->ica_cert_len);
    memcpy(out + NC_OTP_OFF_ICA_CERT, f->ica_cert, f->ica_cert_len);
    if (f->board_cert_len) memcpy(out + NC_OTP_OFF_BOARD_CERT, f->board_cert, f->board_cert_len);
}

int nc_otp_pack(const nc_otp_fields *f, uint8_t *out) {
    int rc = check_fields(f, 1);
    if (rc) return rc;
    if (!out) return NC_OTP_E_ARG;
    pack_shared(f, out);
    memcpy(out + NC_OTP_OFF_SB_PUB, f->secure_boot_pub, NC_OTP_PUB_LEN);
    memcpy(out + NC_OTP_OFF_UID, f->uid, NC_OTP_UID_LEN);
    nc_otp_digest(out, out + NC_OTP_OFF_DIGEST);
    return NC_OTP_OK;
}

int nc_otp_pack_batch(const nc_otp_fields *shared, const uint8_t *sb_pubs, const uint8_t *uids, size_t n,
                      uint8_t *out, uint8_t *digests) {
    uint8_t tmpl[NC_OTP_SIZE];
    nc_sha256_ctx mid, ctx;
    int rc = check_fields(shared, 0);
    if (rc) return rc;
    if (n && (!sb_pubs || !uids || !out)) return NC_OTP_E_ARG;
    pack_shared(shared, tmpl);
    nc_sha256_init(&mid);
    nc_sha256_update(&mid, tmpl + NC_OTP_OFF_ICA_CERT, NC_OTP_CERT_MAX);
    nc_sha256_update(&mid, tmpl, MIDSTATE_LEN);
    for (size_t i = 0; i < n; i++) {
        uint8_t *img = out + i * NC_OTP_SIZE;
        memcpy(img, tmpl, NC_OTP_SIZE);
        memcpy(img + NC_OTP_OFF_SB_PUB, sb_pubs + i * NC_OTP_PUB_LEN, NC_OTP_PUB_LEN);
        memcpy(img + NC_OTP_OFF_UID, uids + i * NC_OTP_UID_LEN, NC_OTP_UID_LEN);
        ctx = mid;
        nc_sha256_update(&ctx, img + MIDSTATE_LEN, 0x100 - MIDSTATE_LEN);
        nc_sha256_final(&ctx, img + NC_OTP_OFF_DIGEST);
        if (digests) memcpy(digests + 32 * i, img + NC_OTP_OFF_DIGEST, 32);
    }
    return NC_OTP_OK;
}

/* err_offset is set to the absolute offset of the offending byte. */
static int blank_or_fail(const uint8_t *img, size_t off, size_t len, nc_otp_info *info) {
    size_t i = first_nonblank(img + off, len);
    if (i == len) return NC_OTP_OK;
    info->err_offset = (uint32_t)(off + i);
    return NC_OTP_E_NOT_BLANK;
}

int nc_otp_parse(const uint8_t *img, size_t len, uint32_t options, nc_otp_info *info) {
    nc_otp_info dummy;
    uint8_t digest[32];
    int rc;
    if (!info) info = &dummy;
    memset(info, 0, sizeof *info);
    if (!img && len) return NC_OTP_E_ARG;
    if (len != NC_OTP_SIZE) return NC_OTP_E_SIZE;
    if (memcmp(img, MAGIC, 4) != 0) return NC_OTP_E_MAGIC;
    info->version = img[NC_OTP_OFF_VERSION];
    info->flags = img[NC_OTP_OFF_FLAGS];
    if (info->version != NC_OTP_VERSION) {
        info->err_offset = NC_OTP_OFF_VERSION;
        return NC_OTP_E_VERSION;
    }
    if (info->flags & ~NC_OTP_FLAGS_KNOWN) {
        info->err_offset = NC_OTP_OFF_FLAGS;
        return NC_OTP_E_FLAGS;
    }
    if ((rc = blank_or_fail(img, NC_OTP_OFF_HDR_RSVD, 2, info))) return rc;
    if ((rc = blank_or_fail(img, NC_OTP_OFF_UID_RSVD, 4, info))) return rc;
    info->policy = get_u32le(img + NC_OTP_OFF_POLICY);
    if (info->policy & ~NC_OTP_POLICY_KNOWN) {
        info->err_offset = NC_OTP_OFF_POLICY;
        return NC_OTP_E_POLICY;
    }
    info->ica_cert_len = get_u32le(img + NC_OTP_OFF_ICA_LEN);
    if (info->ica_cert_len == 0 || info->ica_cert_len > NC_OTP_CERT_MAX) {
        info->err_offset = NC_OTP_OFF_ICA_LEN;
        return NC_OTP_E_ICA_LEN;
    }
    if (der_sequence_len(img + NC_OTP_OFF_ICA_CERT, info->ica_cert_len) != info->ica_cert_len) {
        info->err_offset = NC_OTP_OFF_ICA_CERT;
        return NC_OTP_E_ICA_DER;
    }
    if ((rc = blank_or_fail(img, NC_OTP_OFF_ICA_CERT + info->ica_cert_len,
                            NC_OTP_CERT_MAX - info->ica_cert_len, info)))
        return rc;
    if (img[NC_OTP_OFF_BOARD_CERT] != 0xFF) {
        size_t blen = der_sequence_len(img + NC_OTP_OFF_BOARD_CERT, NC_OTP_CERT_MAX);
        if (blen == 0) {
            info->err_offset = NC_OTP_OFF_BOARD_CERT;
            return NC_OTP_E_BOARD_DER;
        }
        info->board_cert_len = (uint32_t)blen;
    }
    if ((rc = blank_or_fail(img, NC_OTP_OFF_BOARD_CERT + info->board_cert_len,
                            NC_OTP_CERT_MAX - info->board_cert_len, info)))
        return rc;
    if ((rc = blank_or_fail(img, NC_OTP_OFF_RSVD1, NC_OTP_OFF_BOARD_CERT - NC_OTP_OFF_RSVD1, info))) return rc;
    if ((rc = blank_or_fail(img, NC_OTP_OFF_RSVD2, NC_OTP_OFF_DIGEST - NC_OTP_OFF_RSVD2, info))) return rc;
    nc_otp_digest(img, digest);
    info->digest_ok = nc_ct_equal(digest, img + NC_OTP_OFF_DIGEST, 32);
    if (!info->digest_ok && !(options & NC_OTP_PARSE_SKIP_DIGEST)) {
        info->err_offset = NC_OTP_OFF_DIGEST;
        return NC_OTP_E_DIGEST;
    }
    return NC_OTP_OK;
}

int nc_otp_board_seeds(const uint8_t *prk, const uint8_t *info, size_t infolen, uint64_t start,
                       const uint8_t *uids, size_t uidlen, size_t n, uint8_t *out) {
    nc_hmac_ctx key, ctx;
    static const uint8_t one = 0x01;
    if (!prk || (infolen && !info) || (n && (!out || (uidlen && !uids)))) return NC_OTP_E_ARG;
    nc_hmac_sha256_init(&key, prk, 32);
    for (size_t i = 0; i < n; i++) {
        uint8_t idx[8];
        uint64_t v = start + i;
        for (int b = 7; b >= 0; b--, v >>= 8) idx[b] = (uint8_t)v;
        ctx = key;
        nc_hmac_sha256_update(&ctx, info, infolen);
        nc_hmac_sha256_update(&ctx, idx, 8);
        if (uidlen) nc_hmac_sha256_update(&ctx, uids + i * uidlen, uidlen);
        nc_hmac_sha256_update(&ctx, &one, 1);
        nc_hmac_sha256_final(&ctx, out + 32 * i);
    }
    nc_wipe(&key, sizeof key);
    nc_wipe(&ctx, sizeof ctx);
    return NC_OTP_OK;
}

const char *nc_otp_strerror(int code) {
    switch (code) {
    case NC_OTP_OK: return "ok";
    case NC_OTP_E_ARG: return "missing or invalid argument";
    case NC_OTP_E_SIZE: return "image is not 2048 bytes";
    case NC_OTP_E_MAGIC: return "bad magic (not an NSO1 OTP image)";
    case NC_OTP_E_VERSION: return "unsupported OTP layout version";
    case NC_OTP_E_FLAGS: return "unknown header flag bits set";
    case NC_OTP_E_POLICY: return "unknown policy bits set in the config word";
    case NC_OTP_E_ICA_LEN: return "ICA certificate length out of range (1..768)";
    case NC_OTP_E_ICA_DER: return "ICA certificate is not one DER SEQUENCE of the stated length";
    case NC_OTP_E_BOARD_DER: return "board certificate is not one DER SEQUENCE of at most 768 bytes";
    case NC_OTP_E_NOT_BLANK: return "a reserved or unused area is not blank (0xFF)";
    case NC_OTP_E_DIGEST: return "image digest does not match its contents";
    default: return "unknown OTP error";
    }
}
