"""Manifest lines: one canonical JSON object per board, the leaves of the batch's Merkle tree.

A line holds what is public or wrapped about a board: its index, UID (null in count mode), the
SEC1 secure-boot public key, the image digest (entries 252-255) and the wrapped private key.
Lines must be canonical (sorted keys, no spaces, lower-case hex), so a flipped byte can never
leave an equivalent line: it either fails to decode or changes the Merkle root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pki.batch.errors import OtpBatchError

_KEYS = ("i", "otp_digest", "sb_pub", "uid", "wrapped_key")


def encode_line(index: int, uid: bytes | None, sb_pub: bytes, otp_digest: bytes, wrapped_key: bytes) -> bytes:
    """The canonical line (the batch job calls this per board, without building an object)."""
    u = f'"{uid.hex()}"' if uid is not None else "null"
    return (
        f'{{"i":{index},"otp_digest":"{otp_digest.hex()}","sb_pub":"{sb_pub.hex()}",'
        f'"uid":{u},"wrapped_key":"{wrapped_key.hex()}"}}'
    ).encode()


@dataclass(frozen=True)
class ManifestLine:
    index: int
    uid: bytes | None
    sb_pub: bytes  # 65-byte SEC1 uncompressed
    otp_digest: bytes
    wrapped_key: bytes  # RFC 5649 wrap of the PKCS#8 private key under the batch DEK

    def encode(self) -> bytes:
        """Canonical bytes, without the newline (this is the Merkle leaf)."""
        return encode_line(self.index, self.uid, self.sb_pub, self.otp_digest, self.wrapped_key)

    @classmethod
    def decode(cls, line: bytes, where: str) -> ManifestLine:
        """Parse one line (no newline) and insist it is canonical."""
        try:
            d = json.loads(line)
            if not isinstance(d, dict) or tuple(sorted(d)) != _KEYS:
                raise ValueError
            uid = d["uid"]
            out = cls(
                index=d["i"],
                uid=bytes.fromhex(uid) if uid is not None else None,
                sb_pub=bytes.fromhex(d["sb_pub"]),
                otp_digest=bytes.fromhex(d["otp_digest"]),
                wrapped_key=bytes.fromhex(d["wrapped_key"]),
            )
            if not isinstance(out.index, int) or isinstance(out.index, bool):
                raise ValueError
        except (ValueError, TypeError, AttributeError):
            raise OtpBatchError(f"manifest: {where} is not a valid manifest line") from None
        if out.encode() != line:
            raise OtpBatchError(f"manifest: {where} is not in canonical form")
        if len(out.sb_pub) != 65 or len(out.otp_digest) != 32 or (out.uid is not None and len(out.uid) != 12):
            raise OtpBatchError(f"manifest: {where} has a field of the wrong length")
        return out
