/* What every piece of board C does before touching a peripheral, as the silicon needs it: the
 * module clock on, the protected-register unlock, and status bits polled with a bound. */
#ifndef M55M1_HW_H
#define M55M1_HW_H

#include <stdint.h>

/* Polls before a wait gives up (each poll is one bus read; the simulator counts them as time). */
#define HW_POLL_LIMIT 200000u

void hw_clock_on(uint32_t clk_reg, uint32_t bit);
int hw_unlock(void); /* 0 when SYS_REGLCTL reads unlocked */
void hw_lock(void);
/* 0 when (reg & mask) == want within HW_POLL_LIMIT polls, -1 on timeout. */
int hw_wait(uint32_t addr, uint32_t mask, uint32_t want);

#endif
