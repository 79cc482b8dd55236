"""What crosses the wire between the host and the simulated probe, counted as a CMSIS-DAP probe
carries it (``probe.wire``), so a bench can state probe bytes and SWD time per board.

Costs (docs/sim-board.md, "Wire accounting"):

- bytes: a single DP/AP transfer is its request byte and its 32-bit data (5 bytes, as in a
  ``DAP_Transfer`` command); a block transfer (``DAP_TransferBlock``, pyocd's
  ``read_ap_multiple``/``write_ap_multiple``) is one request byte and 4 bytes per word.
- SWD bits: every transfer, and every word of a block, is one SWD packet of
  ``PACKET_BITS`` = 8 request + 1 turnaround + 3 ack + 32 data + 1 parity + 1 turnaround,
  followed by ``IDLE_CYCLES`` idle clocks (pyocd configures a CMSIS-DAP probe with 2). AP reads
  are posted: a read command costs one extra packet (the ``RDBUFF`` read the probe firmware adds).
  A WAIT ack costs a short packet (request, turnaround, ack, turnaround, idle) per retry.
  SWJ sequences (line reset, JTAG-to-SWD) cost their bit count.
- time: SWD bits / SWCLK, at the clock pyocd set (``set_clock``; pyocd's default ``frequency``
  is 1 MHz) unless another clock is given.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

PACKET_BITS = 8 + 1 + 3 + 32 + 1 + 1
IDLE_CYCLES = 2  # pyocd: CMSISDAPProtocol.transfer_configure(idle_cycles=2)
WAIT_BITS = 8 + 1 + 3 + 1 + IDLE_CYCLES
REQUEST_BYTES, WORD_BYTES = 1, 4
DEFAULT_SWCLK_HZ = 1_000_000  # pyocd's default 'frequency' option


@dataclass(frozen=True)
class WireCount:
    """A snapshot of the counters; subtract two to get what one step moved."""

    transfers: int = 0
    blocks: int = 0
    bytes: int = 0
    packets: int = 0
    swd_bits: int = 0

    def __sub__(self, other: WireCount) -> WireCount:
        return WireCount(
            self.transfers - other.transfers,
            self.blocks - other.blocks,
            self.bytes - other.bytes,
            self.packets - other.packets,
            self.swd_bits - other.swd_bits,
        )

    def seconds(self, swclk_hz: float = DEFAULT_SWCLK_HZ) -> float:
        """Modelled SWD time of these bits at ``swclk_hz``."""
        return self.swd_bits / swclk_hz


class Wire:
    """Counters of one probe (one board, one pyocd session). Not reset by pyocd; take a
    ``snapshot()`` before and after what you measure."""

    def __init__(self) -> None:
        self.transfers = 0  # DP/AP register transfers, each word of a block counted
        self.blocks = 0  # block transfers (one request, many words)
        self.bytes = 0  # CMSIS-DAP request + data bytes
        self.packets = 0  # SWD packets, including posted-read RDBUFF reads
        self.swd_bits = 0  # SWCLK cycles: packets, idle cycles, WAIT retries, SWJ sequences
        self.waits = 0  # WAIT acks answered
        self.faults = 0  # FAULT acks answered
        self.swclk_hz: float = DEFAULT_SWCLK_HZ
        #: per register, e.g. ``"W AP0.TAR"``, ``"R AP0.DRW"``, ``"W DP.ABORT"``: words moved
        self.registers: collections.Counter[str] = collections.Counter()

    def single(self, name: str, *, posted_read: bool = False) -> None:
        """One DP/AP transfer (``posted_read``: an AP read, whose data comes with a RDBUFF read)."""
        self.transfers += 1
        self.bytes += REQUEST_BYTES + WORD_BYTES
        if posted_read:
            self.packets += 2
            self.swd_bits += 2 * (PACKET_BITS + IDLE_CYCLES)
        else:
            self.packets += 1
            self.swd_bits += PACKET_BITS + IDLE_CYCLES
        self.registers[name] += 1

    def block(self, name: str, words: int, *, posted_read: bool = False) -> None:
        """One block transfer of ``words`` words to or from one AP register."""
        packets = words + (1 if posted_read else 0)
        self.transfers += words
        self.blocks += 1
        self.bytes += REQUEST_BYTES + WORD_BYTES * words
        self.packets += packets
        self.swd_bits += packets * (PACKET_BITS + IDLE_CYCLES)
        self.registers[name] += words

    def wait(self, retries: int) -> None:
        self.waits += retries
        self.swd_bits += retries * WAIT_BITS

    def sequence(self, bits: int) -> None:
        self.swd_bits += bits

    def snapshot(self) -> WireCount:
        return WireCount(self.transfers, self.blocks, self.bytes, self.packets, self.swd_bits)

    @property
    def seconds(self) -> float:
        """Modelled SWD time so far at the clock pyocd set."""
        return self.swd_bits / self.swclk_hz
