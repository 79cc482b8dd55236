#include "m55m1_hw.h"

#include "m55m1.h"

void hw_clock_on(uint32_t clk_reg, uint32_t bit) { REG32(CLK_BASE + clk_reg) |= bit; }

int hw_unlock(void) {
    for (int tries = 0; tries < 3; tries++) {
        if (REG32(SYS_BASE + SYS_REGLCTL) & SYS_REGLCTL_UNLOCKED) return 0;
        REG32(SYS_BASE + SYS_REGLCTL) = SYS_REGLCTL_KEY1;
        REG32(SYS_BASE + SYS_REGLCTL) = SYS_REGLCTL_KEY2;
        REG32(SYS_BASE + SYS_REGLCTL) = SYS_REGLCTL_KEY3;
    }
    return (REG32(SYS_BASE + SYS_REGLCTL) & SYS_REGLCTL_UNLOCKED) ? 0 : -1;
}

void hw_lock(void) { REG32(SYS_BASE + SYS_REGLCTL) = 0; }

int hw_wait(uint32_t addr, uint32_t mask, uint32_t want) {
    for (uint32_t i = 0; i < HW_POLL_LIMIT; i++) {
        if ((REG32(addr) & mask) == want) return 0;
    }
    return -1;
}
