"""An independent pure-Python packer for OTP layout v1, written from docs/otp-layout.md with
struct and hashlib only. It is the oracle the C packer is compared against (and what produced
the golden vectors), so it deliberately shares no code with ``nucore.otp``."""

from __future__ import annotations

import hashlib
import struct


def reference_pack(
    *,
    root_pub: bytes,
    root_cert_sha256: bytes,
    ica_cert_sha256: bytes,
    secure_boot_pub: bytes,
    uid: bytes,
    ica_cert: bytes,
    policy: int,
    flags: int,
    board_cert: bytes = b"",
) -> bytes:
    img = bytearray(b"\xff" * 2048)
    img[0:6] = b"NSO1" + struct.pack("<BB", 1, flags)  # bytes 6-7 stay blank
    img[0x008:0x048] = root_pub
    img[0x048:0x068] = root_cert_sha256
    img[0x068:0x088] = ica_cert_sha256
    img[0x088:0x0C8] = secure_boot_pub
    img[0x0C8:0x0D4] = uid
    img[0x0D8:0x0E0] = struct.pack("<II", policy, len(ica_cert))
    img[0x100 : 0x100 + len(board_cert)] = board_cert
    img[0x400 : 0x400 + len(ica_cert)] = ica_cert
    img[0x7E0:0x800] = hashlib.sha256(bytes(img[0x400:0x700]) + bytes(img[:0x100])).digest()
    return bytes(img)
