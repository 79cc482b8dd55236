"""The one key-backend interface every HSM flow goes through.

Why a Protocol: the CA, the ceremony and the OEM service only ever say "sign this digest with
key X" or "derive an AES key from this peer point"; whether X lives in SoftHSM2, a network HSM
or (for unit tests only) process memory is chosen once, at construction. Keys are addressed by
*label* (unique per token) because slot ids and object handles move; the optional ``key_id``
is the CKA_ID, kept equal on the private and public halves.

Objects made in a session (ephemeral ECDH key pairs, derived AES keys) are returned as opaque
handles (``EphemeralKeyPair``, ``SecretKey``); they live until ``destroy_*`` is called or the
backend is closed. Their secret values never leave the backend.

Life cycle: construct (opens + logs in) → use from any thread (implementations must be
thread-safe) → ``close()``. Backends are context managers.

Signatures: ``sign_digest`` takes a 32-byte SHA-256 digest (hash outside the HSM) and returns a
DER ECDSA-Sig-Value, ready for X.509; ``sign_digest_raw`` returns the 64-byte ``r‖s`` the
board protocols use.

Wrapping (backup and bulk OTP):

- ``generate_aes_kek`` makes a non-extractable AES-256 KEK inside the token. ``trusted=True``
  sets ``CKA_TRUSTED`` (needs the security-officer PIN), which is the only kind of KEK that may
  wrap keys generated with ``KeyPolicy.wrap_with_trusted`` (RootCA/ICA). A trusted KEK is
  always a session object (never written to the token; gone when the backend closes).
- ``import_aes_kek`` brings a KEK in from its value (the ceremony's backup, and the restore of
  a KEK rebuilt from custodian shares); ``trusted=True`` likewise needs the SO PIN.
- ``wrap_private_key`` / ``unwrap_private_key``: AES key wrap with padding (RFC 5649,
  CKM_AES_KEY_WRAP_PAD) of an EC private key.
- ``wrap_bytes`` / ``unwrap_bytes`` / ``unwrap_to_key``: AES key wrap with padding of secret
  bytes (e.g. per-board OTP secrets) under a KEK; the bytes are imported as a short-lived
  CKO_SECRET_KEY (CKK_GENERIC_SECRET) session object, wrapped, and the object destroyed.
  ``unwrap_to_key`` keeps the result inside the HSM as a non-extractable key; ``unwrap_bytes``
  returns the clear bytes (for secrets that must be programmed into a board). Lengths must be
  a multiple of 8 (8..1024): SoftHSM2 2.6.1 zero-pads CKM_AES_KEY_WRAP_PAD input to 8 bytes
  before wrapping (the MLI then counts the padding), so only multiples of 8 round-trip exactly
  and equal RFC 5649 / ``cryptography``'s ``aes_key_wrap_with_padding`` output.
- Interop note: for the same reason a SoftHSM2-wrapped P-256 private key (67-byte PKCS#8)
  unwraps elsewhere to the PKCS#8 followed by 5 zero bytes; parse the DER length and ignore them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec

from pki.ecpoint import point_of

#: Length of a SHA-256 digest, the only digest ``sign_digest`` accepts.
DIGEST_LEN = 32
#: Length of a SEC1 uncompressed P-256 point (04‖X‖Y).
P256_POINT_LEN = 65


@dataclass(frozen=True)
class KeyPolicy:
    """How a new private key may leave the token.

    Default: never (non-extractable, sensitive). ``extractable=True`` allows wrapping for backup;
    ``wrap_with_trusted=True`` additionally restricts wrapping to trusted KEKs (CKA_TRUSTED) —
    the rule for RootCA/ICA keys. ``wrap_with_trusted`` implies ``extractable``.
    ``derive=True`` also allows ECDH with the key (off by default: signing keys stay signing keys).
    """

    extractable: bool = False
    wrap_with_trusted: bool = False
    derive: bool = False
    #: ``CKA_MODIFIABLE``/``CKA_COPYABLE`` false: no attribute can be loosened later, no copy made.
    frozen: bool = False

    @classmethod
    def ca_key(cls) -> KeyPolicy:
        """RootCA/ICA: may leave the token only wrapped by a trusted KEK; attributes frozen."""
        return cls(extractable=True, wrap_with_trusted=True, frozen=True)

    def required(self) -> dict[str, bool]:
        """Private-key attributes (PKCS#11 names without ``CKA_``) a key must read back with to
        be accepted under this policy: set by the template, or implied by generation in the HSM
        (``LOCAL``, ``ALWAYS_SENSITIVE``, ``NEVER_EXTRACTABLE``)."""
        extractable = self.extractable or self.wrap_with_trusted
        need = {
            "TOKEN": True,
            "PRIVATE": True,
            "SENSITIVE": True,
            "ALWAYS_SENSITIVE": True,
            "LOCAL": True,
            "SIGN": True,
            "EXTRACTABLE": extractable,
            "DERIVE": self.derive,
        }
        if not extractable:
            need["NEVER_EXTRACTABLE"] = True
        if self.wrap_with_trusted:
            need["WRAP_WITH_TRUSTED"] = True
        if self.frozen:
            need["MODIFIABLE"] = False
            need["COPYABLE"] = False
        return need


@dataclass(frozen=True)
class KeyPairInfo:
    """A P-256 key pair stored on the token (private half never readable)."""

    label: str
    key_id: bytes
    public_key: ec.EllipticCurvePublicKey

    @property
    def public_point(self) -> bytes:
        """SEC1 uncompressed point (65 bytes, 04‖X‖Y)."""
        return point_of(self.public_key)


class SecretKeyKind(enum.Enum):
    """What a ``SecretKey`` handle holds."""

    AES = "aes"
    GENERIC_SECRET = "generic_secret"  # noqa: S105 - a key kind, not a password


@dataclass(eq=False)
class SecretKey:
    """Opaque handle to a secret key inside the backend (AES KEK, ECDH-derived AES key...).

    ``label`` is None for unnamed session objects. ``handle`` is backend-private: never
    inspect or pickle it. ``persistent`` says whether it is a token object (survives close).
    """

    label: str | None
    kind: SecretKeyKind
    persistent: bool
    handle: object = field(repr=False)


@dataclass(eq=False)
class EphemeralKeyPair:
    """Session-only P-256 key pair for one ECDH exchange; destroy it when the exchange ends."""

    public_key: ec.EllipticCurvePublicKey
    handle: object = field(repr=False)

    @property
    def public_point(self) -> bytes:
        """SEC1 uncompressed point (65 bytes, 04‖X‖Y)."""
        return point_of(self.public_key)


@runtime_checkable
class KeyBackend(Protocol):
    """Keys inside an HSM (or, for unit tests, memory). All methods are thread-safe.

    Errors are ``pki.errors`` classes: ``KeyNotFoundError``, ``DuplicateKeyError``,
    ``KeyNotWrappableError``, ``UnwrapError``, ``HsmError``.
    """

    # --- long-lived EC key pairs (token objects, addressed by label) ---------------------------

    def generate_ec_keypair(
        self,
        label: str,
        key_id: bytes | None = None,
        *,
        policy: KeyPolicy = KeyPolicy(),
        reuse: bool = False,
    ) -> KeyPairInfo:
        """Make a P-256 key pair on the token. If ``label`` exists: ``DuplicateKeyError``, or
        with ``reuse=True`` return the existing pair unchanged. ``key_id`` defaults to the
        SHA-1 of the public point (the usual SKI), so CKA_ID matches the certificate's SKI."""
        ...

    def find_ec_keypair(self, label: str) -> KeyPairInfo | None:
        """The key pair with that label, or None."""
        ...

    def public_key(self, label: str) -> ec.EllipticCurvePublicKey:
        """Public half of the key pair ``label`` (``KeyNotFoundError`` if absent)."""
        ...

    def sign_digest(self, label: str, digest: bytes) -> bytes:
        """ECDSA (CKM_ECDSA) over a 32-byte SHA-256 ``digest``; DER-encoded signature."""
        ...

    def sign_digest_raw(self, label: str, digest: bytes) -> bytes:
        """ECDSA over a 32-byte ``digest``; raw 64-byte ``r‖s`` (board protocol format)."""
        ...

    def destroy_keypair(self, label: str) -> None:
        """Destroy both halves of ``label`` (``KeyNotFoundError`` if absent). Irreversible."""
        ...

    def list_labels(self) -> list[str]:
        """Labels of all private EC keys and secret keys visible to the user session."""
        ...

    # --- ECDH --------------------------------------------------------------------------------

    def generate_ephemeral_keypair(self) -> EphemeralKeyPair:
        """A session-only P-256 key pair (never written to the token)."""
        ...

    def ecdh_derive_aes(
        self,
        private: EphemeralKeyPair | str,
        peer_point: bytes,
        *,
        label: str | None = None,
        persistent: bool = False,
    ) -> SecretKey:
        """CKM_ECDH1_DERIVE with CKD_NULL: AES-256 key = x-coordinate of the shared point,
        made inside the HSM, sensitive and non-extractable, usable for ENCRYPT.
        ``private`` is an ephemeral pair or the label of a token key pair; ``peer_point`` is a
        65-byte SEC1 uncompressed point (it is checked to be on the curve first).
        ``persistent=True`` (needs ``label``) stores it as a token object."""
        ...

    def aes_ecb_encrypt_block(self, key: SecretKey, block: bytes) -> bytes:
        """AES-ECB of exactly one 16-byte block (key confirmation, docs/key-agreement.md)."""
        ...

    def destroy_ephemeral(self, pair: EphemeralKeyPair) -> None:
        """Destroy an ephemeral key pair (idempotent)."""
        ...

    # --- secret keys, KEKs, wrapping ----------------------------------------------------------

    def generate_aes_kek(
        self, label: str | None = None, *, trusted: bool = False, persistent: bool = True, reuse: bool = False
    ) -> SecretKey:
        """Non-extractable AES-256 KEK made by the token's RNG (WRAP/UNWRAP/ENCRYPT/DECRYPT).
        ``trusted=True`` sets CKA_TRUSTED in a security-officer session (needs the SO PIN);
        ``persistent=False`` makes a session object (label optional)."""
        ...

    def import_aes_kek(
        self, value: bytes, label: str | None = None, *, trusted: bool = False, persistent: bool = False
    ) -> SecretKey:
        """Import a 32-byte AES KEK value (e.g. rebuilt from custodian shares) as a
        non-extractable wrapping key; ``trusted=True`` needs the SO PIN."""
        ...

    def find_secret_key(self, label: str) -> SecretKey | None:
        """The token secret key with that label, or None."""
        ...

    def destroy_secret_key(self, key: SecretKey) -> None:
        """Destroy a secret key (token or session object)."""
        ...

    def wrap_private_key(self, label: str, kek: SecretKey) -> bytes:
        """CKM_AES_KEY_WRAP_PAD of the private key ``label`` under ``kek``.
        ``KeyNotWrappableError`` if the key is non-extractable, or wrap-with-trusted and the
        KEK is not trusted."""
        ...

    def unwrap_private_key(
        self,
        wrapped: bytes,
        kek: SecretKey,
        label: str,
        public_key: ec.EllipticCurvePublicKey,
        key_id: bytes | None = None,
        *,
        policy: KeyPolicy = KeyPolicy(),
    ) -> KeyPairInfo:
        """Unwrap an EC private key as a token object and store its public half next to it
        (the public point comes from the certificate, since a wrapped private key does not carry
        it). Refuses (``DuplicateKeyError``) if ``label`` exists; ``UnwrapError`` if the token
        refuses; checks that the unwrapped private key matches ``public_key``."""
        ...

    def wrap_bytes(self, kek: SecretKey, secret: bytes) -> bytes:
        """RFC 5649 AES key wrap of secret bytes under ``kek`` (length 8..1024, a multiple of 8)."""
        ...

    def unwrap_bytes(self, kek: SecretKey, wrapped: bytes) -> bytes:
        """Inverse of ``wrap_bytes``: the clear secret bytes."""
        ...

    def unwrap_to_key(
        self,
        kek: SecretKey,
        wrapped: bytes,
        *,
        kind: SecretKeyKind = SecretKeyKind.AES,
        label: str | None = None,
        persistent: bool = False,
    ) -> SecretKey:
        """Inverse of ``wrap_bytes`` into a sensitive, non-extractable key inside the HSM."""
        ...

    # --- life cycle ---------------------------------------------------------------------------

    def random_bytes(self, n: int) -> bytes:
        """``n`` bytes from the token's RNG."""
        ...

    def close(self) -> None:
        """Log out and release the session; session objects vanish. Idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
