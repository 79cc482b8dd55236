"""A TRNG block: DATA reads fresh random words (host ``os.urandom``); STS.READY is always set."""

from __future__ import annotations

import os

from nusim.board import Master, WordDevice

TRNG_CTL, TRNG_STS, TRNG_DATA = 0x00, 0x04, 0x08
STS_READY = 1


class Trng(WordDevice):
    def read32(self, offset: int, master: Master) -> int:
        if offset == TRNG_STS:
            return STS_READY
        if offset == TRNG_DATA:
            return int.from_bytes(os.urandom(4), "little")
        return 0
