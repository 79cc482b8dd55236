#include "hal_uart.h"

#include "fw_regs.h"
#include "m55m1_hw.h"

void hal_uart_init(void) {
    hw_clock_on(CLK_UARTCTL, CLK_UARTCTL_UART0CKEN); /* an unclocked UART is inert */
    /* 8N1; the baud rate divider is left to the clock set-up (meaningless in the simulator). */
    REG32(UART0_BASE + UART_LINE) = UART_LINE_WLS_8BIT;
}

int hal_uart_getc(uint8_t *out, uint32_t idle_polls) {
    uint32_t empty = 0;
    while (REG32(UART0_BASE + UART_FIFOSTS) & UART_FIFOSTS_RXEMPTY) {
        if (idle_polls != 0u && ++empty >= idle_polls) return -1;
    }
    *out = (uint8_t)(REG32(UART0_BASE + UART_DAT) & 0xFFu);
    return 0;
}

void hal_uart_write(const uint8_t *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while (REG32(UART0_BASE + UART_FIFOSTS) & UART_FIFOSTS_TXFULL) {
        }
        REG32(UART0_BASE + UART_DAT) = data[i];
    }
}
