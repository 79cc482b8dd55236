/* The SRAM mailbox between host and snippet (docs/snippet-protocol.md). All fields are
 * little-endian u32; the payload follows the header. */
#ifndef SNIPPET_PROTO_H
#define SNIPPET_PROTO_H

#include <stdint.h>

#define SNP_MAILBOX_ADDR 0x20008000u
#define SNP_MAGIC 0x504E534Eu /* "NSNP" */
#define SNP_VERSION 1u
#define SNP_PAYLOAD_MAX 3072u
#define SNP_SNIPPET_VERSION 0x00010000u /* 1.0.0 */

enum snp_command {
    SNP_CMD_STATUS = 1,
    SNP_CMD_READ_UID = 2,
    SNP_CMD_KEYGEN = 3,
    SNP_CMD_GET_PUBKEY = 4,
    SNP_CMD_SIGN_CRI = 5,
};

enum snp_status {
    SNP_OK = 0,
    SNP_ERR_MAGIC = 1,
    SNP_ERR_VERSION = 2,
    SNP_ERR_COMMAND = 3,
    SNP_ERR_LENGTH = 4,
    SNP_ERR_SLOT_USED = 5,
    SNP_ERR_NO_KEY = 6,
    SNP_ERR_KEYSTORE = 7,
    SNP_ERR_CRYPTO = 8,
    SNP_ERR_FMC = 9,
    SNP_ERR_BAD_CRI = 10,
    SNP_ERR_BAD_SLOT = 11,
};
#define SNP_PENDING 0xFFFFFFFFu

typedef struct {
    uint32_t magic;
    uint32_t version;
    uint32_t command;
    uint32_t status;
    uint32_t req_len;
    uint32_t resp_len;
    uint32_t seq;
    uint32_t ack_seq;
    uint8_t payload[SNP_PAYLOAD_MAX];
} snp_mailbox;

#endif
