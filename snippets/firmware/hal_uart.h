/* Polled UART0 driver: the board's command channel (docs/board-protocol.md). */
#ifndef HAL_UART_H
#define HAL_UART_H

#include <stddef.h>
#include <stdint.h>

/* How many consecutive empty-FIFO polls end a frame that stopped arriving. The simulated UART
 * makes one empty poll last one line-idle tick of 1 ms, so this is ~200 ms there. */
#define HAL_UART_FRAME_TIMEOUT_POLLS 200u

void hal_uart_init(void);
/* Wait for one received byte. idle_polls == 0 waits forever; otherwise returns -1 after that
 * many empty polls, 0 with *out set when a byte arrived. */
int hal_uart_getc(uint8_t *out, uint32_t idle_polls);
void hal_uart_write(const uint8_t *data, size_t len);

#endif
