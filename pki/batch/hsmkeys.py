"""Getting a board's secure-boot private key back, inside the HSM only.

The batch DEK is unwrapped from ``batch.json`` into the HSM as a session key (never readable),
and the board's wrapped PKCS#8 key is unwrapped under it into a token key pair, which the backend
checks against the public key from the manifest (``pki.hsm.batch_import.import_batch_key``).
This is how the OEM signs a board's firmware with its SecureBoot key (the service's
``/secure-boot-key/import`` endpoint calls the same primitive), and how tests check wrapped keys
against their public keys.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pki.batch.batchdir import read_batch, read_line
from pki.batch.errors import OtpBatchError
from pki.errors import KeyNotFoundError
from pki.hsm import KeyBackend, KeyPairInfo
from pki.hsm.batch_import import import_batch_key


def ensure_batch_keys(backend: KeyBackend, kek_label: str, signer_label: str) -> None:
    """Create the batch KEK (non-extractable AES-256) and the seal signer (P-256) if missing.
    In production both come from the key ceremony; this is for rehearsals, demos and tests."""
    backend.generate_aes_kek(kek_label, reuse=True)
    backend.generate_ec_keypair(signer_label, reuse=True)


def unwrap_board_key(backend: KeyBackend, batch_dir: Path, index: int, label: str) -> KeyPairInfo:
    """Unwrap board ``index``'s secure-boot key into the HSM as token key pair ``label``
    (``pki.hsm.batch_import``: the same primitive the OEM service uses)."""
    info = read_batch(batch_dir)
    line = read_line(info, index)
    try:
        return import_batch_key(
            backend,
            kek_label=info.kek_label,
            wrapped_dek=info.wrapped_dek,
            wrapped_key=line.wrapped_key,
            public_point=line.sb_pub,
            label=label,
        )
    except KeyNotFoundError:
        raise OtpBatchError(f"HSM: no KEK labelled {info.kek_label!r} on the token") from None


def check_board_key(backend: KeyBackend, batch_dir: Path, index: int) -> None:
    """Unwrap board ``index``'s key in the HSM, sign a random digest with it there, verify the
    signature with the manifest's public key outside, then destroy the unwrapped key."""
    label = f"nusec-otp-check-{secrets.token_hex(6)}"
    pair = unwrap_board_key(backend, batch_dir, index, label)
    try:
        digest = secrets.token_bytes(32)
        sig = backend.sign_digest(label, digest)
        pair.public_key.verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    finally:
        backend.destroy_keypair(label)
