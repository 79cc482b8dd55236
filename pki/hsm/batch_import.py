"""Import one board's secure-boot private key from a bulk OTP batch into the HSM, never in clear.

A batch (docs/otp-batch.md) keeps each board's PKCS#8 private key wrapped (RFC 5649) under the
batch DEK, and the DEK wrapped under the batch KEK, a non-extractable key on the token. To sign a
batch board's firmware the OEM needs that key *inside* the HSM: the DEK is unwrapped into the
token as a short-lived session key (never readable), the board key is unwrapped under it as a
token key pair, the backend checks it against the expected public key, and the DEK is destroyed.
The host process only ever handles wrapped bytes and public keys.

This is the one implementation: the batch tools (``pki.batch``) and the OEM service both
call it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from pki.errors import KeyNotFoundError, UnwrapError
from pki.hsm.backend import P256_POINT_LEN, KeyBackend, KeyPairInfo, KeyPolicy, SecretKeyKind


def import_batch_key(
    backend: KeyBackend,
    *,
    kek_label: str,
    wrapped_dek: bytes,
    wrapped_key: bytes,
    public_point: bytes,
    label: str,
    policy: KeyPolicy = KeyPolicy(),  # noqa: B008 - frozen dataclass
) -> KeyPairInfo:
    """Unwrap ``wrapped_key`` (under the DEK that ``wrapped_dek`` holds under KEK ``kek_label``)
    into the token as key pair ``label``, checked against ``public_point`` (65-byte SEC1).

    Raises ``KeyNotFoundError`` (no such KEK), ``UnwrapError`` (wrong KEK/DEK, corrupted blob, or
    the key does not match ``public_point``), ``DuplicateKeyError`` (``label`` is taken). On any
    failure nothing is left on the token.
    """
    if len(public_point) != P256_POINT_LEN:
        raise UnwrapError("importing a batch key: the expected public key is not a 65-byte SEC1 point")
    try:
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_point)
    except ValueError:
        raise UnwrapError("importing a batch key: the expected public key is not a P-256 point") from None
    kek = backend.find_secret_key(kek_label)
    if kek is None:
        raise KeyNotFoundError(f"importing a batch key: no KEK labelled {kek_label!r} on the token")
    dek = backend.unwrap_to_key(kek, wrapped_dek, kind=SecretKeyKind.AES)
    try:
        return backend.unwrap_private_key(wrapped_key, dek, label, public_key, policy=policy)
    finally:
        backend.destroy_secret_key(dek)
