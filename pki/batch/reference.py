"""The same chunk of work as ``build.build_chunk``, written the straightforward way: cryptography
for keys and AES key wrap, hashlib for digests, struct for the image. It is the benchmark's
reference (bench/otp_bulk.py) and an independent oracle: tests check it produces byte-identical
chunks. Nothing here is slowed down on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from pki.batch.batchdir import BatchInfo, write_atomic
from pki.batch.keygen import PKCS8_PREFIX, SEED_INFO, scalar_from_seed


def reference_image(info: BatchInfo, sb_xy: bytes, uid: bytes) -> bytes:
    sh = info.shared
    img = bytearray(b"\xff" * 2048)
    img[0:6] = b"NSO1" + struct.pack("<BB", 1, sh.flags)
    img[0x008:0x048] = sh.root_pub
    img[0x048:0x068] = sh.root_cert_sha256
    img[0x068:0x088] = sh.ica_cert_sha256
    img[0x088:0x0C8] = sb_xy
    img[0x0C8:0x0D4] = uid
    img[0x0D8:0x0E0] = struct.pack("<II", sh.policy, len(sh.ica_cert))
    img[0x400 : 0x400 + len(sh.ica_cert)] = sh.ica_cert
    img[0x7E0:0x800] = hashlib.sha256(bytes(img[0x400:0x700]) + bytes(img[:0x100])).digest()
    return bytes(img)


def reference_chunk(info: BatchInfo, prk: bytes, dek: bytes, c: int, *, random_keys: bool = False) -> int:
    """Chunk ``c`` the straightforward way. ``random_keys=True`` uses ``ec.generate_private_key``
    instead of deriving from the seed (faster in cryptography, but not reproducible): the bench
    shows it for context only."""
    start, n = c * info.chunk_size, info.chunk_len(c)
    uids = info.uids(start, n)
    images: list[bytes] = []
    lines: list[bytes] = []
    for k in range(n):
        i = start + k
        uid = uids[k] if uids is not None else b""
        seed = hmac.digest(prk, SEED_INFO + i.to_bytes(8, "big") + uid + b"\x01", "sha256")
        if random_keys:
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = ec.derive_private_key(scalar_from_seed(seed), ec.SECP256R1())
        pub = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        pkcs8 = PKCS8_PREFIX + key.private_numbers().private_value.to_bytes(32, "big")
        wrapped = aes_key_wrap_with_padding(dek, pkcs8)
        img = reference_image(info, pub[1:], uid or b"\xff" * 12)
        images.append(img)
        uid_json = f'"{uid.hex()}"' if uids is not None else "null"
        lines.append(
            f'{{"i":{i},"otp_digest":"{img[0x7E0:].hex()}","sb_pub":"{pub.hex()}","uid":{uid_json},'
            f'"wrapped_key":"{wrapped.hex()}"}}'.encode()
        )
    write_atomic(info.images_path(c), b"".join(images))
    write_atomic(info.manifest_path(c), b"\n".join(lines) + b"\n")
    return n
