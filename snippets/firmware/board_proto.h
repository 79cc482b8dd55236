/* The board command channel on UART0 (docs/board-protocol.md is the normative description).
 *
 * Frame: SOF(0xA5) | cmd u8 | len u16 LE | payload[len] | crc32 u32 LE
 * crc32 = CRC-32/IEEE (zlib) over cmd, len and payload. A response carries cmd | 0x80 and a
 * payload that starts with one status byte. */
#ifndef BOARD_PROTO_H
#define BOARD_PROTO_H

#define BP_SOF 0xA5u
#define BP_MAX_PAYLOAD 256u
#define BP_RESPONSE_BIT 0x80u
#define BP_PROTOCOL_VERSION 1u

/* Requests. */
#define BP_CMD_VERSION 0x01u
#define BP_CMD_UID 0x02u
#define BP_CMD_STATUS 0x03u
#define BP_CMD_ECDH_BEGIN 0x10u
#define BP_CMD_ECDH_FINISH 0x11u

/* Unsolicited / frame-level responses (no request cmd to echo). */
#define BP_RSP_FRAME_ERROR 0xFFu /* payload: status */
#define BP_RSP_BOOT_FAIL 0xFEu   /* sent by the boot ROM: status BOOT_FAIL, reason */

/* Status codes (first payload byte of every response). */
#define BP_OK 0x00u
#define BP_ERR_CRC 0x01u
#define BP_ERR_LENGTH 0x02u
#define BP_ERR_UNKNOWN_CMD 0x03u
#define BP_ERR_TIMEOUT 0x04u
#define BP_ERR_STATE 0x05u
#define BP_ERR_NO_IDENTITY 0x06u
#define BP_ERR_BAD_SIGNATURE 0x07u
#define BP_ERR_KEY_CONFIRM 0x08u
#define BP_ERR_CRYPTO 0x09u
#define BP_ERR_NO_ROTPK 0x0Au
#define BP_ERR_BAD_POINT 0x0Bu
#define BP_ERR_HW 0x0Cu
#define BP_ERR_BOOT_FAIL 0x20u

/* ECDH session states reported by STATUS. */
#define BP_STATE_IDLE 0u
#define BP_STATE_PENDING 1u
#define BP_STATE_ESTABLISHED 2u

#endif
