"""The board's published interface: the Nu-Link3 flash layout, the KeyStore slots, the UART frame
protocol of the firmware, and the M55M1 conformance table.

Both sides of the SWD cable agree on these facts: the desktop (``nusec``) reads them to drive a
board, the simulated board (``nusim``) and the board C (``snippets/``) implement them. This package
imports nothing of ours, so either side may import it without reaching the other.
"""
