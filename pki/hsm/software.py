"""In-memory ``KeyBackend`` for fast unit tests of code ABOVE the HSM layer. Not for production.

Why it exists: some unit tests (profile tables, CSR policy) only need "something that signs".
It follows the same rules as the PKCS#11 backend (duplicate labels refused, non-extractable
keys refuse wrapping, wrap-with-trusted needs a trusted KEK, AES key wrap with padding over a
PKCS#8 private key, as SoftHSM2 does) so behaviour matches; every flow is ALSO tested
against SoftHSM2. Keys live in process memory: never use it for real keys.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from nucore.p256 import signature_from_der
from pki.ecpoint import key_id_of
from pki.errors import DuplicateKeyError, HsmError, KeyNotFoundError, KeyNotWrappableError, UnwrapError
from pki.hsm.backend import (
    DIGEST_LEN,
    P256_POINT_LEN,
    EphemeralKeyPair,
    KeyPairInfo,
    KeyPolicy,
    SecretKey,
    SecretKeyKind,
)


@dataclass
class _Pair:
    private: ec.EllipticCurvePrivateKey
    key_id: bytes
    policy: KeyPolicy


@dataclass
class _Secret:
    value: bytes
    trusted: bool


class SoftwareBackend:
    """``KeyBackend`` in process memory (thread-safe via one lock). Unit tests only."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pairs: dict[str, _Pair] = {}
        self._secrets: dict[str, _Secret] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise HsmError("the software backend is closed")

    def _taken(self, label: str) -> bool:
        return label in self._pairs or label in self._secrets

    def _pair(self, label: str) -> _Pair:
        self._check_open()
        try:
            return self._pairs[label]
        except KeyError:
            raise KeyNotFoundError(f"no key labelled {label!r}") from None

    @staticmethod
    def _secret(key: SecretKey) -> _Secret:
        if not isinstance(key.handle, _Secret):
            raise HsmError("handle does not belong to the software backend")
        return key.handle

    def generate_ec_keypair(
        self,
        label: str,
        key_id: bytes | None = None,
        *,
        policy: KeyPolicy = KeyPolicy(),  # noqa: B008 - frozen dataclass
        reuse: bool = False,
    ) -> KeyPairInfo:
        with self._lock:
            self._check_open()
            if self._taken(label):
                if reuse and label in self._pairs:
                    return self._info(label)
                raise DuplicateKeyError(f"a key labelled {label!r} already exists")
            private = ec.generate_private_key(ec.SECP256R1())
            kid = key_id if key_id is not None else key_id_of(private.public_key())
            self._pairs[label] = _Pair(private, kid, policy)
            return self._info(label)

    def _info(self, label: str) -> KeyPairInfo:
        pair = self._pair(label)
        return KeyPairInfo(label=label, key_id=pair.key_id, public_key=pair.private.public_key())

    def find_ec_keypair(self, label: str) -> KeyPairInfo | None:
        with self._lock:
            self._check_open()
            return self._info(label) if label in self._pairs else None

    def public_key(self, label: str) -> ec.EllipticCurvePublicKey:
        with self._lock:
            return self._pair(label).private.public_key()

    def sign_digest(self, label: str, digest: bytes) -> bytes:
        if len(digest) != DIGEST_LEN:
            raise HsmError(f"digest must be {DIGEST_LEN} bytes")
        with self._lock:
            return self._pair(label).private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    def sign_digest_raw(self, label: str, digest: bytes) -> bytes:
        return signature_from_der(self.sign_digest(label, digest))

    def destroy_keypair(self, label: str) -> None:
        with self._lock:
            self._pair(label)
            del self._pairs[label]

    def list_labels(self) -> list[str]:
        with self._lock:
            return sorted([*self._pairs, *self._secrets])

    def generate_ephemeral_keypair(self) -> EphemeralKeyPair:
        private = ec.generate_private_key(ec.SECP256R1())
        return EphemeralKeyPair(public_key=private.public_key(), handle=private)

    def ecdh_derive_aes(
        self,
        private: EphemeralKeyPair | str,
        peer_point: bytes,
        *,
        label: str | None = None,
        persistent: bool = False,
    ) -> SecretKey:
        if len(peer_point) != P256_POINT_LEN:
            raise HsmError("peer point must be 65 bytes")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_point)
        except ValueError:
            raise HsmError("peer point is not on P-256") from None
        with self._lock:
            if isinstance(private, EphemeralKeyPair):
                if not isinstance(private.handle, ec.EllipticCurvePrivateKey):
                    raise HsmError("ephemeral key pair was destroyed")
                priv = private.handle
            else:
                pair = self._pair(private)
                if not pair.policy.derive:
                    raise HsmError(f"key {private!r} is not allowed to derive")
                priv = pair.private
            secret = _Secret(priv.exchange(ec.ECDH(), peer), trusted=False)
            if persistent:
                if not label:
                    raise HsmError("a persistent derived key needs a label")
                if self._taken(label):
                    raise DuplicateKeyError(f"a key labelled {label!r} already exists")
                self._secrets[label] = secret
            return SecretKey(label, SecretKeyKind.AES, persistent, secret)

    def aes_ecb_encrypt_block(self, key: SecretKey, block: bytes) -> bytes:
        if len(block) != 16:
            raise HsmError("block must be 16 bytes")
        enc = Cipher(algorithms.AES(self._secret(key).value), modes.ECB()).encryptor()  # noqa: S305 - one block
        return enc.update(block) + enc.finalize()

    def destroy_ephemeral(self, pair: EphemeralKeyPair) -> None:
        pair.handle = None

    def _store_secret(
        self, label: str | None, persistent: bool, secret: _Secret, reuse: bool = False
    ) -> SecretKey:
        with self._lock:
            self._check_open()
            if persistent:
                if not label:
                    raise HsmError("a persistent key needs a label")
                if self._taken(label):
                    if reuse and label in self._secrets:
                        return SecretKey(label, SecretKeyKind.AES, True, self._secrets[label])
                    raise DuplicateKeyError(f"a key labelled {label!r} already exists")
                self._secrets[label] = secret
            return SecretKey(label, SecretKeyKind.AES, persistent, secret)

    def generate_aes_kek(
        self, label: str | None = None, *, trusted: bool = False, persistent: bool = True, reuse: bool = False
    ) -> SecretKey:
        if trusted:  # as on a token: a trusted KEK is only ever a session object
            persistent = False
        return self._store_secret(label, persistent, _Secret(os.urandom(32), trusted), reuse)

    def import_aes_kek(
        self, value: bytes, label: str | None = None, *, trusted: bool = False, persistent: bool = False
    ) -> SecretKey:
        if len(value) != 32:
            raise HsmError("KEK value must be 32 bytes (AES-256)")
        if trusted:  # as on a token: a trusted KEK is only ever a session object
            persistent = False
            label = label or f"nusec-kek-{os.urandom(8).hex()}"
        return self._store_secret(label, persistent, _Secret(bytes(value), trusted))

    def find_secret_key(self, label: str) -> SecretKey | None:
        with self._lock:
            secret = self._secrets.get(label)
            return None if secret is None else SecretKey(label, SecretKeyKind.AES, True, secret)

    def destroy_secret_key(self, key: SecretKey) -> None:
        with self._lock:
            if key.label is not None and self._secrets.get(key.label) is key.handle:
                del self._secrets[key.label]

    def wrap_private_key(self, label: str, kek: SecretKey) -> bytes:
        with self._lock:
            pair = self._pair(label)
            kek_secret = self._secret(kek)
            if not (pair.policy.extractable or pair.policy.wrap_with_trusted):
                raise KeyNotWrappableError(f"key {label!r} is not extractable")
            if pair.policy.wrap_with_trusted and not kek_secret.trusted:
                raise KeyNotWrappableError(f"key {label!r} may only be wrapped by a trusted KEK")
            pkcs8 = pair.private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            return aes_key_wrap_with_padding(kek_secret.value, pkcs8)

    def unwrap_private_key(
        self,
        wrapped: bytes,
        kek: SecretKey,
        label: str,
        public_key: ec.EllipticCurvePublicKey,
        key_id: bytes | None = None,
        *,
        policy: KeyPolicy = KeyPolicy(),  # noqa: B008 - frozen dataclass
    ) -> KeyPairInfo:
        with self._lock:
            if self._taken(label):
                raise DuplicateKeyError(f"a key labelled {label!r} already exists")
            try:
                pkcs8 = aes_key_unwrap_with_padding(self._secret(kek).value, wrapped)
                private = serialization.load_der_private_key(pkcs8, None)
            except (InvalidUnwrap, ValueError):
                raise UnwrapError("the wrapped blob is invalid for this KEK") from None
            if not isinstance(private, ec.EllipticCurvePrivateKey) or private.public_key() != public_key:
                raise UnwrapError("the unwrapped key does not match the given public key")
            kid = key_id if key_id is not None else key_id_of(public_key)
            self._pairs[label] = _Pair(private, kid, policy)
            return self._info(label)

    def wrap_bytes(self, kek: SecretKey, secret: bytes) -> bytes:
        if not 8 <= len(secret) <= 1024 or len(secret) % 8:
            raise HsmError("secret must be a multiple of 8 bytes, 8..1024")
        return aes_key_wrap_with_padding(self._secret(kek).value, secret)

    def unwrap_bytes(self, kek: SecretKey, wrapped: bytes) -> bytes:
        try:
            return aes_key_unwrap_with_padding(self._secret(kek).value, wrapped)
        except InvalidUnwrap:
            raise UnwrapError("the wrapped blob is invalid for this KEK") from None

    def unwrap_to_key(
        self,
        kek: SecretKey,
        wrapped: bytes,
        *,
        kind: SecretKeyKind = SecretKeyKind.AES,
        label: str | None = None,
        persistent: bool = False,
    ) -> SecretKey:
        value = self.unwrap_bytes(kek, wrapped)
        if kind is SecretKeyKind.AES and len(value) not in (16, 24, 32):
            raise UnwrapError("unwrapped value is not an AES key length")
        key = self._store_secret(label, persistent, _Secret(value, False))
        return SecretKey(key.label, kind, key.persistent, key.handle)

    def random_bytes(self, n: int) -> bytes:
        if n <= 0:
            raise HsmError("random_bytes needs a positive length")
        return os.urandom(n)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
