/* NuSec reference board firmware: serves the board protocol (docs/board-protocol.md) on UART0.
 * It answers VERSION, UID and STATUS, and runs the authenticated ECDH of
 * docs/key-agreement.md with the identity key the KeyGen snippet left in the KeyStore. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "board_proto.h"
#include "fw_regs.h"
#include "hal_crypto.h"
#include "hal_fmc.h"
#include "hal_ks.h"
#include "hal_uart.h"
#include "nc_hash.h"
#include "nusec_slots.h"

#define FW_VERSION_MAJOR 1u
#define FW_VERSION_MINOR 0u
#define FW_VERSION_REVISION 0u

/* Where the KeyGen snippet leaves the identity key: a KeyStore OTP slot the mask ROM does not
 * read (nusec_slots.h), not readable (snippets/keygen, docs/snippet-protocol.md). */
#ifndef FW_IDENTITY_KS_MEM
#define FW_IDENTITY_KS_MEM HAL_KS_OTP
#endif
#ifndef FW_IDENTITY_KS_NUM
#define FW_IDENTITY_KS_NUM NUSEC_KS_IDENTITY_SLOT
#endif

#define POINT_LEN 65u
#define SIG_LEN 64u
#define KC_LEN 16u
#define NO_SLOT 0xFFu

static const char BOARD_LABEL[] = "NuSec-ECDH-board-v1";
static const char SERVER_LABEL[] = "NuSec-ECDH-server-v1";
static const char KC_SERVER_LABEL[] = "NuSec-KC-server";
static const char KC_BOARD_LABEL[] = "NuSec-KC-board";
static const char FW_NAME[] = "nusec-ref-fw";

static uint8_t rx_buf[BP_MAX_PAYLOAD];
static uint8_t tx_buf[BP_MAX_PAYLOAD];

static struct {
    uint8_t state;
    hal_ks_key eph;
    hal_ks_key aes;
    uint8_t uid[HAL_FMC_UID_LEN];
    uint8_t board_eph[POINT_LEN];
} session;

static void put_le16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v) {
    put_le16(p, v);
    put_le16(p + 2, v >> 16);
}

static void send_frame(uint8_t cmd, const uint8_t *payload, uint32_t len) {
    uint8_t head[4] = {BP_SOF, cmd, 0, 0};
    uint8_t tail[4];
    put_le16(head + 2, len);
    uint32_t crc = nc_crc32(0, head + 1, 3);
    crc = nc_crc32(crc, payload, len);
    put_le32(tail, crc);
    hal_uart_write(head, sizeof head);
    hal_uart_write(payload, len);
    hal_uart_write(tail, sizeof tail);
}

static void send_status(uint8_t cmd, uint8_t status) { send_frame(cmd, &status, 1); }

/* Discard input until the line has been idle for a frame timeout, so the rest of a rejected
 * frame is not parsed as new frames. */
static void drain_input(void) {
    uint8_t b;
    while (hal_uart_getc(&b, HAL_UART_FRAME_TIMEOUT_POLLS) == 0) {
    }
}

static void sha256_parts(uint8_t out[32], const char *label, const uint8_t *a, size_t alen, const uint8_t *b,
                         size_t blen, const uint8_t *c, size_t clen) {
    nc_sha256_ctx ctx;
    nc_sha256_init(&ctx);
    if (label) nc_sha256_update(&ctx, (const uint8_t *)label, strlen(label));
    nc_sha256_update(&ctx, a, alen);
    nc_sha256_update(&ctx, b, blen);
    if (c) nc_sha256_update(&ctx, c, clen);
    nc_sha256_final(&ctx, out);
}

static void forget_key(hal_ks_key *key) {
    if (key->num != NO_SLOT) (void)hal_ks_erase(*key);
    key->num = NO_SLOT;
}

static void reset_session(void) {
    forget_key(&session.eph);
    session.state = BP_STATE_IDLE;
}

static int rotpk_read(uint8_t pub[64]) {
    if (hal_fmc_read_otp(FW_OTP_ROTPK_ENTRY, pub, 64) != 0) return -1;
    uint8_t all = 0xFF;
    for (int i = 0; i < 64; i++) all &= pub[i];
    return all == 0xFF ? -1 : 0;
}

static uint32_t cmd_version(void) {
    tx_buf[0] = BP_OK;
    tx_buf[1] = BP_PROTOCOL_VERSION;
    tx_buf[2] = FW_VERSION_MAJOR;
    tx_buf[3] = FW_VERSION_MINOR;
    put_le16(tx_buf + 4, FW_VERSION_REVISION);
    put_le16(tx_buf + 6, BP_MAX_PAYLOAD);
    memcpy(tx_buf + 8, FW_NAME, sizeof FW_NAME - 1);
    return 8 + sizeof FW_NAME - 1;
}

static uint32_t cmd_uid(void) {
    if (hal_fmc_read_uid(tx_buf + 1) != 0) {
        tx_buf[0] = BP_ERR_HW;
        return 1;
    }
    tx_buf[0] = BP_OK;
    return 1 + HAL_FMC_UID_LEN;
}

static uint32_t cmd_status(void) {
    uint8_t pub[64];
    tx_buf[0] = BP_OK;
    tx_buf[1] = session.state;
    tx_buf[2] = rotpk_read(pub) == 0 ? 1u : 0u;
    tx_buf[3] = session.state == BP_STATE_ESTABLISHED ? session.aes.num : NO_SLOT;
    return 4;
}

static uint32_t cmd_ecdh_begin(void) {
    uint8_t pub[64];
    uint8_t digest[32];
    const hal_ks_key identity = {FW_IDENTITY_KS_MEM, FW_IDENTITY_KS_NUM};

    reset_session();
    forget_key(&session.aes); /* a new exchange replaces the previous AES_NuLink3 */
    if (hal_fmc_read_uid(session.uid) != 0) return (tx_buf[0] = BP_ERR_HW, 1);
    if (hal_ecc_keygen_ks(&session.eph) != 0 || hal_ecc_public_ks(session.eph, pub) != 0) {
        reset_session();
        return (tx_buf[0] = BP_ERR_CRYPTO, 1);
    }
    session.board_eph[0] = 0x04;
    memcpy(session.board_eph + 1, pub, 64);
    sha256_parts(digest, BOARD_LABEL, session.uid, sizeof session.uid, session.board_eph, POINT_LEN, NULL,
                 0);
    if (hal_ecc_sign_ks(identity, digest, tx_buf + 1 + POINT_LEN) != 0) {
        reset_session();
        return (tx_buf[0] = BP_ERR_NO_IDENTITY, 1);
    }
    session.state = BP_STATE_PENDING;
    tx_buf[0] = BP_OK;
    memcpy(tx_buf + 1, session.board_eph, POINT_LEN);
    return 1 + POINT_LEN + SIG_LEN;
}

static uint8_t ecdh_finish(const uint8_t *srv_eph, const uint8_t *srv_sig, const uint8_t *kc_server,
                           uint8_t kc_board[KC_LEN]) {
    uint8_t rotpk[64];
    uint8_t digest[32];
    uint8_t t[32];
    uint8_t expected[KC_LEN];
    hal_ks_key aes = {HAL_KS_SRAM, NO_SLOT};

    if (session.state != BP_STATE_PENDING) return BP_ERR_STATE;
    if (srv_eph[0] != 0x04) return BP_ERR_BAD_POINT;
    if (rotpk_read(rotpk) != 0) return BP_ERR_NO_ROTPK;
    {
        nc_sha256_ctx ctx;
        nc_sha256_init(&ctx);
        nc_sha256_update(&ctx, (const uint8_t *)SERVER_LABEL, sizeof SERVER_LABEL - 1);
        nc_sha256_update(&ctx, session.uid, sizeof session.uid);
        nc_sha256_update(&ctx, session.board_eph, POINT_LEN);
        nc_sha256_update(&ctx, srv_eph, POINT_LEN);
        nc_sha256_final(&ctx, digest);
    }
    if (hal_ecc_verify(rotpk, digest, srv_sig) != 0) return BP_ERR_BAD_SIGNATURE;
    int rc = hal_ecc_ecdh_ks(session.eph, srv_eph + 1, &aes);
    forget_key(&session.eph); /* the ephemeral private key is used exactly once */
    if (rc == -2) return BP_ERR_BAD_POINT;
    if (rc != 0) return BP_ERR_CRYPTO;

    sha256_parts(t, NULL, session.uid, sizeof session.uid, session.board_eph, POINT_LEN, srv_eph, POINT_LEN);
    sha256_parts(digest, KC_SERVER_LABEL, t, sizeof t, NULL, 0, NULL, 0);
    if (hal_aes256_ecb_ks(aes, digest, expected) != 0) {
        forget_key(&aes);
        return BP_ERR_CRYPTO;
    }
    if (!nc_ct_equal(expected, kc_server, KC_LEN)) {
        forget_key(&aes); /* refuse to keep a key the server did not prove */
        return BP_ERR_KEY_CONFIRM;
    }
    sha256_parts(digest, KC_BOARD_LABEL, t, sizeof t, NULL, 0, NULL, 0);
    if (hal_aes256_ecb_ks(aes, digest, kc_board) != 0) {
        forget_key(&aes);
        return BP_ERR_CRYPTO;
    }
    session.aes = aes;
    return BP_OK;
}

static uint32_t cmd_ecdh_finish(const uint8_t *payload) {
    uint8_t status = ecdh_finish(payload, payload + POINT_LEN, payload + POINT_LEN + SIG_LEN, tx_buf + 1);
    if (status != BP_OK) {
        reset_session();
        tx_buf[0] = status;
        return 1;
    }
    session.state = BP_STATE_ESTABLISHED;
    tx_buf[0] = BP_OK;
    return 1 + KC_LEN;
}

/* Expected request payload length per command; -1 for an unknown command. */
static int request_len(uint8_t cmd) {
    switch (cmd) {
        case BP_CMD_VERSION:
        case BP_CMD_UID:
        case BP_CMD_STATUS:
        case BP_CMD_ECDH_BEGIN:
            return 0;
        case BP_CMD_ECDH_FINISH:
            return (int)(POINT_LEN + SIG_LEN + KC_LEN);
        default:
            return -1;
    }
}

static void dispatch(uint8_t cmd, uint32_t len) {
    int want = request_len(cmd);
    uint32_t out;
    if (want < 0) {
        send_status((uint8_t)(cmd | BP_RESPONSE_BIT), BP_ERR_UNKNOWN_CMD);
        return;
    }
    if ((uint32_t)want != len) {
        send_status((uint8_t)(cmd | BP_RESPONSE_BIT), BP_ERR_LENGTH);
        return;
    }
    switch (cmd) {
        case BP_CMD_VERSION:
            out = cmd_version();
            break;
        case BP_CMD_UID:
            out = cmd_uid();
            break;
        case BP_CMD_STATUS:
            out = cmd_status();
            break;
        case BP_CMD_ECDH_BEGIN:
            out = cmd_ecdh_begin();
            break;
        default:
            out = cmd_ecdh_finish(rx_buf);
            break;
    }
    send_frame((uint8_t)(cmd | BP_RESPONSE_BIT), tx_buf, out);
}

/* Read n bytes with the frame timeout; 0 when all arrived. */
static int read_exact(uint8_t *dst, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (hal_uart_getc(&dst[i], HAL_UART_FRAME_TIMEOUT_POLLS) != 0) return -1;
    }
    return 0;
}

static void serve_one_frame(void) {
    uint8_t b;
    uint8_t head[3];
    uint8_t crc_le[4];

    (void)hal_uart_getc(&b, 0);
    if (b != BP_SOF) return; /* hunt for the start of a frame */
    if (read_exact(head, sizeof head) != 0) {
        send_status(BP_RSP_FRAME_ERROR, BP_ERR_TIMEOUT);
        return;
    }
    uint32_t len = (uint32_t)head[1] | ((uint32_t)head[2] << 8);
    if (len > BP_MAX_PAYLOAD) {
        send_status(BP_RSP_FRAME_ERROR, BP_ERR_LENGTH);
        drain_input();
        return;
    }
    if (read_exact(rx_buf, len) != 0 || read_exact(crc_le, sizeof crc_le) != 0) {
        send_status(BP_RSP_FRAME_ERROR, BP_ERR_TIMEOUT);
        return;
    }
    uint32_t crc = nc_crc32(0, head, sizeof head);
    crc = nc_crc32(crc, rx_buf, len);
    uint32_t got = (uint32_t)crc_le[0] | ((uint32_t)crc_le[1] << 8) | ((uint32_t)crc_le[2] << 16) |
                   ((uint32_t)crc_le[3] << 24);
    if (crc != got) {
        /* The whole frame was consumed: the host may retry at once. */
        send_status(BP_RSP_FRAME_ERROR, BP_ERR_CRC);
        return;
    }
    dispatch(head[0], len);
}

int main(void) {
    session.state = BP_STATE_IDLE;
    session.eph.num = NO_SLOT;
    session.aes.num = NO_SLOT;
    hal_uart_init();
    (void)hal_ks_init(); /* a failure shows up as ERR_CRYPTO/ERR_NO_IDENTITY on first use */
    for (;;) serve_one_frame();
}
