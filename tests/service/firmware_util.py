"""Test firmware: a plausible Cortex-M image (vector table + code bytes), and imgtool as oracle."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

IMGTOOL = str(Path(sys.executable).with_name("imgtool"))


def cortex_m_firmware(size: int = 4096, seed: int = 1) -> bytes:
    """Initial SP in SRAM, Thumb reset vector, then deterministic filler."""
    body = bytearray(struct.pack("<II", 0x2001_0000, 0x0000_0201 | 1))
    body += bytes((i * 31 + seed) & 0xFF for i in range(size - len(body)))
    return bytes(body)


def imgtool_verify(image: bytes, public_pem: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    img = tmp / f"signed-{os.getpid()}-{len(image)}.bin"
    pub = tmp / "sb-pub.pem"
    img.write_bytes(image)
    pub.write_text(public_pem)
    return subprocess.run(
        [IMGTOOL, "verify", "-k", str(pub), str(img)], capture_output=True, text=True, timeout=60
    )
