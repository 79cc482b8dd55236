#include "hal_ks.h"

#include "fw_regs.h"
#include "m55m1_hw.h"

#define KS(off) REG32(KS_BASE + (off))

/* Wait for the operation to finish (BUSY clear, IF set), with a bound; clear IF/EIF. */
static int ks_wait(void) {
    if (hw_wait(KS_BASE + KS_STS, KS_STS_BUSY | KS_STS_IF, KS_STS_IF) != 0) return -1;
    uint32_t sts = KS(KS_STS);
    KS(KS_STS) = KS_STS_IF | KS_STS_EIF; /* write 1 to clear */
    return (sts & KS_STS_EIF) ? -1 : 0;
}

int hal_ks_init(void) {
    hw_clock_on(CLK_KSCTL, CLK_KSCTL_KS0CKEN);
    hw_clock_on(CLK_CRYPTOCTL, CLK_CRYPTOCTL_CRYPTO0CKEN);
    hw_clock_on(CLK_TRNGCTL, CLK_TRNGCTL_TRNG0CKEN); /* the PRNG seeds from the TRNG */
    if (hw_wait(KS_BASE + KS_STS, KS_STS_BUSY, 0) != 0) return -1;
    KS(KS_CTL) = KS_CTL_INIT | KS_CTL_START;
    if (ks_wait() != 0) return -1;
    return (KS(KS_STS) & KS_STS_INITDONE) ? 0 : -1;
}

uint32_t hal_ks_meta(uint8_t mem, uint8_t num, uint32_t owner) {
    return KS_META_SEC | KS_META_PRIV | (KS_SIZE_256 << KS_META_SIZE_POS) | (owner << KS_META_OWNER_POS) |
           ((uint32_t)num << KS_META_NUMBER_POS) | ((uint32_t)mem << KS_META_DST_POS);
}

int hal_ks_erase(hal_ks_key key) {
    KS(KS_METADATA) = hal_ks_meta(key.mem, key.num, 0);
    KS(KS_CTL) = (KS_OP_ERASE << KS_CTL_OPMODE_POS) | KS_CTL_START;
    return ks_wait();
}
