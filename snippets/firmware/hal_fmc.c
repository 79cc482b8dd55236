#include "hal_fmc.h"

#include "fw_regs.h"
#include "m55m1_hw.h"

#define FMC(off) REG32(FMC_BASE + (off))

/* One ISP command as the part needs it: ISP clock on, protected registers unlocked (ISPCTL and
 * ISPTRG ignore writes otherwise), ISPGO polled with a bound, ISPFF checked; locked again after. */
static int isp(uint32_t cmd, uint32_t addr, uint32_t *data) {
    int rc = 0;
    hw_clock_on(CLK_FMCCTL, CLK_FMCCTL_ISP0CKEN);
    if (hw_unlock() != 0) return -1;
    FMC(FMC_ISPCTL) |= FMC_ISPCTL_ISPEN;
    FMC(FMC_ISPCMD) = cmd;
    FMC(FMC_ISPADDR) = addr;
    FMC(FMC_ISPTRG) = FMC_ISPTRG_ISPGO;
    if (hw_wait(FMC_BASE + FMC_ISPTRG, FMC_ISPTRG_ISPGO, 0) != 0) {
        rc = -1;
    } else if (FMC(FMC_ISPCTL) & FMC_ISPCTL_ISPFF) {
        FMC(FMC_ISPCTL) |= FMC_ISPCTL_ISPFF; /* write 1 to clear */
        rc = -1;
    } else {
        *data = FMC(FMC_ISPDAT);
    }
    hw_lock();
    return rc;
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
        if (isp(FMC_CMD_READ, FMC_OTP_BASE + entry * 8u + off, &w) != 0) return -1;
        put_le32(out + off, w);
    }
    return 0;
}
