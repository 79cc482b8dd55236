"""OTP image v1 (docs/otp-layout.md): pack, batch-pack and strictly parse the 2048-byte image.

Packing and every check live in C (``csrc/nc_otp.c``) because the board and the host must agree
byte for byte; this module only turns the result into typed, immutable objects and gives writers
the entry ranges they program and verify field by field, and the one conversion between OTP
bytes and the 32-bit words ISP reads and programs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from nucore._ffi import ffi, lib
from nucore.errors import NativeError

IMAGE_SIZE: Final = int(lib.NC_OTP_SIZE)
ENTRY_SIZE: Final = 8
LAYOUT_VERSION: Final = int(lib.NC_OTP_VERSION)
CERT_MAX: Final = int(lib.NC_OTP_CERT_MAX)
PUB_LEN: Final = 64
UID_LEN: Final = 12
DIGEST_LEN: Final = 32


class OtpFlags(enum.IntFlag):
    """Header flag bits (byte 5)."""

    BATCH = int(lib.NC_OTP_FLAG_BATCH)  #: the secure-boot key was made by a bulk batch job


class OtpPolicy(enum.IntFlag):
    """Policy bits of the config word (entry 27, low u32)."""

    SECURE_BOOT_REQUIRED = int(lib.NC_OTP_POLICY_SECURE_BOOT)
    DEBUG_LOCK_ON_SEAL = int(lib.NC_OTP_POLICY_DEBUG_LOCK)


class OtpErrorCode(enum.IntEnum):
    """The C parser's error codes (``nc_otp_strerror`` has the messages)."""

    ARG = int(lib.NC_OTP_E_ARG)
    SIZE = int(lib.NC_OTP_E_SIZE)
    MAGIC = int(lib.NC_OTP_E_MAGIC)
    VERSION = int(lib.NC_OTP_E_VERSION)
    FLAGS = int(lib.NC_OTP_E_FLAGS)
    POLICY = int(lib.NC_OTP_E_POLICY)
    ICA_LEN = int(lib.NC_OTP_E_ICA_LEN)
    ICA_DER = int(lib.NC_OTP_E_ICA_DER)
    BOARD_DER = int(lib.NC_OTP_E_BOARD_DER)
    NOT_BLANK = int(lib.NC_OTP_E_NOT_BLANK)
    DIGEST = int(lib.NC_OTP_E_DIGEST)


class OtpError(NativeError):
    """An OTP image (or its inputs) was rejected; ``code`` says which rule, ``offset`` where."""

    def __init__(self, code: OtpErrorCode, offset: int | None = None) -> None:
        self.code = code
        self.offset = offset
        msg = ffi.string(lib.nc_otp_strerror(int(code))).decode()
        super().__init__(f"OTP image: {msg}" + (f" (at byte 0x{offset:03X})" if offset else ""))


def _raise_for(rc: int, offset: int | None = None) -> None:
    if rc != 0:
        try:
            code = OtpErrorCode(rc)
        except ValueError:  # pragma: no cover - the C side only returns known codes
            raise NativeError(f"OTP: unknown native error {rc}") from None
        raise OtpError(code, offset)


@dataclass(frozen=True)
class OtpField:
    """One field of the layout: its name, the entries it occupies, its byte offset and size."""

    name: str
    entries: range

    @property
    def offset(self) -> int:
        return self.entries.start * ENTRY_SIZE

    @property
    def size(self) -> int:
        return len(self.entries) * ENTRY_SIZE


#: Every entry range of the layout, in address order (writers program and lock by entry).
FIELDS: Final = MappingProxyType(
    {
        f.name: f
        for f in (
            OtpField("header", range(0, 1)),
            OtpField("root_pub", range(1, 9)),
            OtpField("root_cert_sha256", range(9, 13)),
            OtpField("ica_cert_sha256", range(13, 17)),
            OtpField("secure_boot_pub", range(17, 25)),
            OtpField("uid", range(25, 27)),
            OtpField("config", range(27, 28)),
            OtpField("reserved1", range(28, 32)),
            OtpField("board_cert", range(32, 128)),
            OtpField("ica_cert", range(128, 224)),
            OtpField("reserved2", range(224, 252)),
            OtpField("digest", range(252, 256)),
        )
    }
)


@dataclass(frozen=True)
class OtpImage:
    """A parsed (and therefore fully checked) OTP image. ``raw`` is the exact 2048 bytes."""

    version: int
    flags: OtpFlags
    root_pub: bytes
    root_cert_sha256: bytes
    ica_cert_sha256: bytes
    secure_boot_pub: bytes
    uid: bytes
    config: OtpPolicy
    ica_cert: bytes
    board_cert: bytes | None
    digest: bytes
    digest_ok: bool
    raw: bytes

    def to_bytes(self) -> bytes:
        return self.raw

    @staticmethod
    def entries(field: str) -> range:
        """Entry numbers of ``field`` (a key of ``FIELDS``)."""
        try:
            return FIELDS[field].entries
        except KeyError:
            raise NativeError(f"OTP: no field named {field!r}") from None

    def field_bytes(self, field: str) -> bytes:
        """The image bytes of ``field``'s entries, exactly as they are programmed."""
        entries = self.entries(field)
        return self.raw[entries.start * ENTRY_SIZE : entries.stop * ENTRY_SIZE]

    def entry(self, n: int) -> bytes:
        """The 8 bytes of entry ``n`` (0..255)."""
        if not 0 <= n < IMAGE_SIZE // ENTRY_SIZE:
            raise NativeError(f"OTP: entry {n} out of range 0..255")
        return self.raw[n * ENTRY_SIZE : (n + 1) * ENTRY_SIZE]


def _req(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise NativeError(f"OTP: {name} must be {size} bytes, got {len(value)}")


class _Shared:
    """Keeps the cffi buffers alive as long as the nc_otp_fields struct that points at them."""

    def __init__(
        self,
        root_pub: bytes,
        root_cert_sha256: bytes,
        ica_cert_sha256: bytes,
        ica_cert: bytes,
        policy: int,
        flags: int,
        board_cert: bytes | None,
    ) -> None:
        _req("root_pub", root_pub, PUB_LEN)
        _req("root_cert_sha256", root_cert_sha256, DIGEST_LEN)
        _req("ica_cert_sha256", ica_cert_sha256, DIGEST_LEN)
        if not 0 <= policy <= 0xFFFFFFFF or not 0 <= flags <= 0xFF:
            raise NativeError("OTP: policy must fit u32 and flags u8")
        self._keep = [ffi.from_buffer(b) for b in (root_pub, root_cert_sha256, ica_cert_sha256, ica_cert)]
        self.f = ffi.new("nc_otp_fields *")
        self.f.root_pub, self.f.root_cert_sha256, self.f.ica_cert_sha256, self.f.ica_cert = self._keep
        self.f.ica_cert_len = len(ica_cert)
        self.f.policy = policy
        self.f.flags = flags
        if board_cert:
            self._keep.append(ffi.from_buffer(board_cert))
            self.f.board_cert = self._keep[-1]
            self.f.board_cert_len = len(board_cert)


def pack(
    *,
    root_pub: bytes,
    root_cert_sha256: bytes,
    ica_cert_sha256: bytes,
    secure_boot_pub: bytes,
    uid: bytes,
    ica_cert: bytes,
    policy: int = OtpPolicy.SECURE_BOOT_REQUIRED | OtpPolicy.DEBUG_LOCK_ON_SEAL,
    flags: int = 0,
    board_cert: bytes | None = None,
) -> bytes:
    """One 2048-byte image (digest included). Raises ``OtpError`` for invalid inputs."""
    _req("secure_boot_pub", secure_boot_pub, PUB_LEN)
    _req("uid", uid, UID_LEN)
    shared = _Shared(root_pub, root_cert_sha256, ica_cert_sha256, ica_cert, policy, flags, board_cert)
    sb = ffi.from_buffer(secure_boot_pub)
    u = ffi.from_buffer(uid)
    shared.f.secure_boot_pub = sb
    shared.f.uid = u
    out = ffi.new("uint8_t[]", IMAGE_SIZE)
    _raise_for(lib.nc_otp_pack(shared.f, out))
    return bytes(ffi.buffer(out))


#: An unwritten public key field (all ones, as erased OTP reads).
BLANK_PUB: Final = b"\xff" * PUB_LEN


def assemble(
    *,
    root_cert: bytes,
    root_pub: bytes,
    ica_cert: bytes,
    uid: bytes,
    secure_boot_pub: bytes = BLANK_PUB,
    board_cert: bytes | None = None,
) -> bytes:
    """A board's image from the chain it trusts (RootCA/ICA DER, RootCA key X||Y), its UID and what
    is known so far: the secure-boot key stays blank until the step that burns it."""
    from nucore.hashes import sha256

    return pack(
        root_pub=root_pub,
        root_cert_sha256=sha256(root_cert),
        ica_cert_sha256=sha256(ica_cert),
        secure_boot_pub=secure_boot_pub,
        uid=uid,
        ica_cert=ica_cert,
        board_cert=board_cert,
    )


def with_board_cert(image: bytes, board_cert: bytes) -> bytes:
    """``image`` with ``board_cert`` (DER) in its board-certificate field, the rest unchanged (the
    digest leaves that field out, so a bulk image stays valid)."""
    f = FIELDS["board_cert"]
    if len(image) != IMAGE_SIZE:
        raise NativeError(f"OTP: image must be {IMAGE_SIZE} bytes, got {len(image)}")
    if not 0 < len(board_cert) <= f.size:
        raise NativeError(f"OTP: board certificate must be 1..{f.size} bytes, got {len(board_cert)}")
    cert = board_cert + b"\xff" * (f.size - len(board_cert))
    return image[: f.offset] + cert + image[f.offset + f.size :]


def words_to_bytes(words: Iterable[int]) -> bytes:
    """OTP bytes from 32-bit words as FMC ISP READ returns them (little-endian), in address order."""
    return b"".join(w.to_bytes(4, "little") for w in words)


def entries_to_bytes(entry_words: Iterable[tuple[int, int]]) -> bytes:
    """The bytes of OTP entries from their (low, high) word pairs, in entry order."""
    return words_to_bytes(w for pair in entry_words for w in pair)


def bytes_to_words(data: bytes) -> list[int]:
    """The 32-bit words (little-endian) an ISP PROGRAM writes for ``data`` (a multiple of 4 bytes)."""
    if len(data) % 4:
        raise NativeError(f"OTP data must be whole 32-bit words, got {len(data)} bytes")
    return [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]


def entries_of(*fields: str) -> list[int]:
    """The entry numbers of ``fields``, sorted (what a writer programs and locks together)."""
    return sorted(n for name in fields for n in OtpImage.entries(name))


def pack_batch(
    *,
    root_pub: bytes,
    root_cert_sha256: bytes,
    ica_cert_sha256: bytes,
    ica_cert: bytes,
    secure_boot_pubs: bytes,
    uids: bytes,
    policy: int = OtpPolicy.SECURE_BOOT_REQUIRED | OtpPolicy.DEBUG_LOCK_ON_SEAL,
    flags: int = OtpFlags.BATCH,
) -> tuple[bytes, bytes]:
    """N images in one native call from contiguous per-board inputs (N*64 key bytes, N*12 UID
    bytes) and one set of shared RootCA/ICA material. Returns (N*2048 image bytes, N*32 digests);
    the GIL is released during the call."""
    if len(secure_boot_pubs) % PUB_LEN or len(uids) % UID_LEN:
        raise NativeError("OTP batch: key/UID buffers are not whole multiples of 64/12 bytes")
    n = len(secure_boot_pubs) // PUB_LEN
    if len(uids) // UID_LEN != n:
        raise NativeError(f"OTP batch: {n} secure-boot keys but {len(uids) // UID_LEN} UIDs")
    shared = _Shared(root_pub, root_cert_sha256, ica_cert_sha256, ica_cert, policy, flags, None)
    out = bytearray(IMAGE_SIZE * n)
    digests = bytearray(DIGEST_LEN * n)
    if n:
        rc = lib.nc_otp_pack_batch(
            shared.f,
            ffi.from_buffer(secure_boot_pubs),
            ffi.from_buffer(uids),
            n,
            ffi.from_buffer(out),
            ffi.from_buffer(digests),
        )
        _raise_for(rc)
    return bytes(out), bytes(digests)


def digest(image: bytes) -> bytes:
    """SHA-256(bytes 0x400-0x6FF || bytes 0x000-0x0FF): what entries 252-255 hold."""
    _req("image", image, IMAGE_SIZE)
    out = ffi.new("uint8_t[32]")
    lib.nc_otp_digest(image, out)
    return bytes(out)


def parse(data: bytes, *, check_digest: bool = True) -> OtpImage:
    """Strictly parse an image; ``OtpError`` names the first broken rule.

    With ``check_digest=False`` a digest mismatch is reported in ``digest_ok`` instead of
    raising (useful to show a damaged image); every structural rule is still enforced.
    """
    info = ffi.new("nc_otp_info *")
    opts = 0 if check_digest else int(lib.NC_OTP_PARSE_SKIP_DIGEST)
    rc = lib.nc_otp_parse(ffi.from_buffer(data), len(data), opts, info)
    _raise_for(rc, int(info.err_offset))
    raw = bytes(data)

    def at(off: int, size: int) -> bytes:
        return raw[off : off + size]

    board_len = int(info.board_cert_len)
    return OtpImage(
        version=int(info.version),
        flags=OtpFlags(int(info.flags)),
        root_pub=at(lib.NC_OTP_OFF_ROOT_PUB, PUB_LEN),
        root_cert_sha256=at(lib.NC_OTP_OFF_ROOT_CERT_SHA, DIGEST_LEN),
        ica_cert_sha256=at(lib.NC_OTP_OFF_ICA_CERT_SHA, DIGEST_LEN),
        secure_boot_pub=at(lib.NC_OTP_OFF_SB_PUB, PUB_LEN),
        uid=at(lib.NC_OTP_OFF_UID, UID_LEN),
        config=OtpPolicy(int(info.policy)),
        ica_cert=at(lib.NC_OTP_OFF_ICA_CERT, int(info.ica_cert_len)),
        board_cert=at(lib.NC_OTP_OFF_BOARD_CERT, board_len) if board_len else None,
        digest=at(lib.NC_OTP_OFF_DIGEST, DIGEST_LEN),
        digest_ok=bool(info.digest_ok),
        raw=raw,
    )


def board_seeds(prk: bytes, info: bytes, start: int, n: int, uids: bytes = b"") -> bytes:
    """Bulk per-board seeds in one native call: ``seed_i = HMAC-SHA256(prk, info || u64be(start+i)
    || uid_i || 0x01)`` (HKDF-Expand, one block), ``uids`` = n UIDs back to back or empty."""
    if len(prk) != DIGEST_LEN:
        raise NativeError("board_seeds: prk must be 32 bytes")
    if n < 0 or not 0 <= start < 2**64 - n:
        raise NativeError("board_seeds: start/n out of range")
    if uids and (n == 0 or len(uids) % n):
        raise NativeError("board_seeds: uids is not n equal-length items")
    uidlen = len(uids) // n if uids else 0
    out = bytearray(DIGEST_LEN * n)
    if n:
        rc = lib.nc_otp_board_seeds(prk, info, len(info), start, uids, uidlen, n, ffi.from_buffer(out))
        _raise_for(rc)
    return bytes(out)
