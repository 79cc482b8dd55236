#include "hal_fmc.h"

#include "fw_regs.h"

static int isp(uint32_t cmd, uint32_t addr, uint32_t *data) {
    REG32(FMC_BASE + FMC_ISPCTL) |= FMC_ISPCTL_ISPEN;
    REG32(FMC_BASE + FMC_ISPCMD) = cmd;
    REG32(FMC_BASE + FMC_ISPADDR) = addr;
    REG32(FMC_BASE + FMC_ISPTRG) = FMC_ISPTRG_ISPGO;
    while (REG32(FMC_BASE + FMC_ISPTRG) & FMC_ISPTRG_ISPGO) {
    }
    if (REG32(FMC_BASE + FMC_ISPCTL) & FMC_ISPCTL_ISPFF) {
        REG32(FMC_BASE + FMC_ISPCTL) |= FMC_ISPCTL_ISPFF; /* write 1 to clear */
        return -1;
    }
    *data = REG32(FMC_BASE + FMC_ISPDAT);
    return 0;
}

static void put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int hal_fmc_read_uid(uint8_t uid[HAL_FMC_UID_LEN]) {
    for (uint32_t i = 0; i < 3u; i++) {
        uint32_t w;
        if (isp(FMC_CMD_READ_UID, i * 4u, &w) != 0) return -1;
        put_le32(uid + 4u * i, w);
    }
    return 0;
}

int hal_fmc_read_otp(uint32_t entry, uint8_t *out, uint32_t len) {
    for (uint32_t off = 0; off < len; off += 4u) {
        uint32_t w;
        if (isp(FMC_CMD_READ, FW_OTP_BASE + entry * 8u + off, &w) != 0) return -1;
        put_le32(out + off, w);
    }
    return 0;
}
