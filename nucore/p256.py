"""P-256 keys, ECDSA and ECDH from the native core, in the shape of pyca/cryptography's ``ec`` API.

The C underneath is the same code the board runs, constant time on every secret. Messages are
hashed with SHA-256 unless ``prehashed=True`` (then ``data`` is the 32-byte digest). Signatures
are DER by default, or raw ``r || s`` (IEEE P1363) with ``encoding="raw"``. Every public key is
fully validated when it is built, so an object of these classes is always a good curve point.
"""

from __future__ import annotations

import os
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from nucore._ffi import ffi, lib
from nucore.errors import NativeError
from nucore.hashes import sha256

SignatureEncoding = Literal["der", "raw"]

# Keep in step with the NC_P256_E* codes in csrc/nc_p256.h.
_REASONS = {
    -1: "not a valid P-256 public key (bad SEC1 encoding, coordinate >= p, or not on the curve)",
    -2: "private scalar is not in [1, n-1]",
    -4: "bad argument length",
    -5: "signature does not verify",
}

ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# DER is unique, so a P-256 SubjectPublicKeyInfo (id-ecPublicKey, namedCurve prime256v1, BIT STRING
# with 0 unused bits) is exactly one of these headers followed by the SEC1 point.
_SPKI_UNCOMPRESSED = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_SPKI_COMPRESSED = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200")


class InvalidSignature(NativeError):
    """An ECDSA signature did not verify (or was malformed)."""


def _check(rc: int, what: str) -> None:
    if rc == -5:
        raise InvalidSignature(f"{what}: {_REASONS[-5]}")
    if rc != 0:
        raise NativeError(f"{what}: {_REASONS.get(rc, f'error {rc}')}")


def _need_len(value: bytes, length: int, what: str) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise NativeError(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) != length:
        raise NativeError(f"{what} must be {length} bytes, got {len(value)}")


def _digest(data: bytes, prehashed: bool) -> bytes:
    if prehashed:
        _need_len(data, 32, "prehashed digest")
        return bytes(data)
    return sha256(bytes(data))


def signature_from_der(der: bytes) -> bytes:
    """Strict DER ECDSA-Sig-Value -> raw ``r || s`` (64 bytes); raises NativeError when malformed.

    The one owner of this conversion (the service, CA, HSM backends and desktop import it). The
    DER itself is cryptography's strict decoder: not a hot path (bulk work stays raw), so no
    hand-written length parsing of our own."""
    try:
        r, s = decode_dss_signature(bytes(der))
    except (ValueError, TypeError):
        raise NativeError(
            "signature_from_der: signature is not strict DER (SEQUENCE of two minimal positive INTEGERs)"
        ) from None
    if r >= 1 << 256 or s >= 1 << 256:
        raise NativeError("signature_from_der: signature scalars are too large for P-256")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signature_to_der(raw: bytes) -> bytes:
    """Raw ``r || s`` (64 bytes, what PKCS#11 and the board's KeyStore return) -> minimal DER."""
    _need_len(raw, 64, "raw signature")
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


class PublicKey:
    """A validated P-256 public point (never infinity, coordinates < p, on the curve)."""

    __slots__ = ("_sec1",)

    def __init__(self, uncompressed: bytes, *, _validated: bool = False) -> None:
        if not _validated:
            raise NativeError("use PublicKey.from_sec1(...) to build a public key")
        self._sec1 = uncompressed

    @classmethod
    def from_sec1(cls, data: bytes) -> PublicKey:
        """Decode SEC1 uncompressed (65 bytes) or compressed (33 bytes), with full validation."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise NativeError(f"public key must be bytes, not {type(data).__name__}")
        data = bytes(data)
        out = ffi.new("uint8_t[65]")
        _check(lib.nc_p256_point_decode(data, len(data), out), "PublicKey.from_sec1")
        return cls(bytes(out), _validated=True)

    @classmethod
    def from_spki_der(cls, der: bytes) -> PublicKey:
        """Strict DER SubjectPublicKeyInfo with the named curve P-256 (explicit parameters,
        other curves and BER encodings are rejected)."""
        der = bytes(der)
        for header, size in ((_SPKI_UNCOMPRESSED, 65), (_SPKI_COMPRESSED, 33)):
            if der.startswith(header) and len(der) == len(header) + size:
                return cls.from_sec1(der[len(header) :])
        raise NativeError(
            "PublicKey.from_spki_der: not a DER SubjectPublicKeyInfo for a named-curve P-256 key"
        )

    def to_spki_der(self) -> bytes:
        return _SPKI_UNCOMPRESSED + self._sec1

    def to_sec1(self, *, compressed: bool = False) -> bytes:
        if not compressed:
            return self._sec1
        out = ffi.new("uint8_t[33]")
        _check(lib.nc_p256_point_compress(self._sec1, out), "PublicKey.to_sec1")
        return bytes(out)

    def verify(
        self,
        signature: bytes,
        data: bytes,
        *,
        prehashed: bool = False,
        encoding: SignatureEncoding = "der",
    ) -> None:
        """Raise InvalidSignature unless ``signature`` is a valid ECDSA signature over ``data``."""
        digest = _digest(data, prehashed)
        if encoding == "der":
            try:
                raw = signature_from_der(signature)
            except NativeError as exc:
                raise InvalidSignature(str(exc)) from None
        else:
            if len(signature) != 64:
                raise InvalidSignature(f"raw signature must be 64 bytes, got {len(signature)}")
            raw = bytes(signature)
        _check(lib.nc_p256_verify(self._sec1, digest, raw), "verify")

    def is_valid_signature(
        self,
        signature: bytes,
        data: bytes,
        *,
        prehashed: bool = False,
        encoding: SignatureEncoding = "der",
    ) -> bool:
        try:
            self.verify(signature, data, prehashed=prehashed, encoding=encoding)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._sec1 == self._sec1

    def __hash__(self) -> int:
        return hash(self._sec1)

    def __repr__(self) -> str:
        return f"PublicKey({self.to_sec1(compressed=True).hex()})"


class PrivateKey:
    """A P-256 private scalar in [1, n-1]. Its value never appears in repr or error messages."""

    __slots__ = ("_public", "_scalar")

    def __init__(self, scalar: bytes, public: bytes, *, _validated: bool = False) -> None:
        if not _validated:
            raise NativeError("use PrivateKey.from_seed / generate / from_bytes to build a private key")
        self._scalar = scalar
        self._public = PublicKey(public, _validated=True)

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """Deterministic key from a 32-byte seed (HKDF-SHA256 + rejection, see csrc/nc_p256.h)."""
        _need_len(seed, 32, "seed")
        priv = ffi.new("uint8_t[32]")
        pub = ffi.new("uint8_t[65]")
        _check(lib.nc_p256_keygen(bytes(seed), priv, pub), "PrivateKey.from_seed")
        return cls(bytes(priv), bytes(pub), _validated=True)

    @classmethod
    def generate(cls) -> PrivateKey:
        """A fresh key from the OS RNG (os.urandom seed)."""
        return cls.from_seed(os.urandom(32))

    @classmethod
    def from_bytes(cls, scalar: bytes) -> PrivateKey:
        """Import a 32-byte big-endian scalar; it must be in [1, n-1]."""
        _need_len(scalar, 32, "private scalar")
        pub = ffi.new("uint8_t[65]")
        _check(lib.nc_p256_public_key(bytes(scalar), pub), "PrivateKey.from_bytes")
        return cls(bytes(scalar), bytes(pub), _validated=True)

    def to_bytes(self) -> bytes:
        """The 32-byte big-endian scalar (an explicit export: handle as a secret)."""
        return self._scalar

    def public_key(self) -> PublicKey:
        return self._public

    def sign(
        self,
        data: bytes,
        *,
        prehashed: bool = False,
        extra_entropy: bytes | None = None,
        encoding: SignatureEncoding = "der",
    ) -> bytes:
        """ECDSA with an RFC 6979 nonce; ``extra_entropy`` hedges it (RFC 6979 section 3.6)."""
        digest = _digest(data, prehashed)
        extra = bytes(extra_entropy) if extra_entropy is not None else b""
        sig = ffi.new("uint8_t[64]")
        _check(
            lib.nc_p256_sign(self._scalar, digest, extra if extra else ffi.NULL, len(extra), sig),
            "sign",
        )
        raw = bytes(sig)
        return signature_to_der(raw) if encoding == "der" else raw

    def exchange(self, peer: PublicKey) -> bytes:
        """ECDH: the 32-byte x-coordinate of d * peer."""
        return ecdh(self, peer)

    def __repr__(self) -> str:
        return f"PrivateKey(public={self._public.to_sec1(compressed=True).hex()})"


def ecdh(private_key: PrivateKey, peer: PublicKey) -> bytes:
    """The shared secret (x-coordinate, 32 bytes) between our key and a validated peer key."""
    out = ffi.new("uint8_t[32]")
    _check(lib.nc_p256_ecdh(private_key.to_bytes(), peer.to_sec1(), out), "ecdh")
    return bytes(out)


def scalar_from_seed(seed: bytes) -> bytes:
    """The private scalar a 32-byte seed maps to (HKDF-SHA256 candidates, first one in [1, n-1])."""
    _need_len(seed, 32, "seed")
    out = ffi.new("uint8_t[32]")
    _check(lib.nc_p256_scalar_from_seed(bytes(seed), out), "scalar_from_seed")
    return bytes(out)


def field_backend() -> str:
    """The field multiplication the native core picked when it loaded: ``"adx"`` (x86-64 BMI2+ADX
    assembly) or ``"portable"`` (C). Set NUSEC_P256_FIELD=portable before import to force C."""
    return str(ffi.string(lib.nc_p256_field_backend()).decode())
