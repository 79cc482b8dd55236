"""Test firmware: a plausible Cortex-M image (vector table + code bytes), and imgtool as oracle."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

IMGTOOL = str(Path(sys.executable).with_name("imgtool"))


def cortex_m_firmware(
    size: int = 4096, seed: int = 1, header_size: int = 0x400, load_address: int = 0
) -> bytes:
    """A body linked like snippets/firmware's firmware_bl2 (the application slot 0x00140000, or
    ``load_address``, + ``header_size``): initial SP
    at the top of 64 KiB of SRAM0, reset and fault handlers (Thumb) inside it, then filler."""
    base = (load_address or 0x0014_0000) + header_size
    handler = (base + 0x80) | 1
    vectors = [0x2011_0000, handler] + [handler] * 6 + [0, 0, 0, handler, handler, 0, handler, handler]
    body = bytearray(struct.pack("<16I", *vectors))
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
