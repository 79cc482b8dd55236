"""The in-memory backend (unit tests only) behaves like the PKCS#11 one on the same scenario.

The scenario runs on both; SoftHSM2 is the reference, so the software backend cannot drift into
accepting what a real token refuses.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pki.ca import Issuer, create_root_certificate, issue_board_certificate
from pki.errors import DuplicateKeyError, KeyNotFoundError, KeyNotWrappableError, UnwrapError
from pki.hsm.backend import KeyBackend, KeyPolicy
from pki.hsm.softhsm import SoftHsmToken
from pki.hsm.software import SoftwareBackend
from tests.pki.conftest import name


@pytest.fixture(params=["softhsm2", "software"])
def any_backend(request: pytest.FixtureRequest) -> Iterator[KeyBackend]:
    if request.param == "software":
        with SoftwareBackend() as b:
            yield b
    else:
        token: SoftHsmToken = request.getfixturevalue("token")
        with token.open_backend() as b:
            yield b


def test_same_behaviour(any_backend: KeyBackend) -> None:
    b = any_backend
    assert isinstance(b, KeyBackend)
    info = b.generate_ec_keypair("k", policy=KeyPolicy.ca_key())
    with pytest.raises(DuplicateKeyError):
        b.generate_ec_keypair("k")
    assert b.generate_ec_keypair("k", reuse=True).public_point == info.public_point
    digest = hashlib.sha256(b"x").digest()
    info.public_key.verify(b.sign_digest("k", digest), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert len(b.sign_digest_raw("k", digest)) == 64
    with pytest.raises(KeyNotFoundError):
        b.public_key("missing")
    plain = b.generate_aes_kek("plain")
    with pytest.raises(KeyNotWrappableError):
        b.wrap_private_key("k", plain)
    b.generate_ec_keypair("fixed")
    with pytest.raises(KeyNotWrappableError):
        b.wrap_private_key("fixed", plain)
    value = os.urandom(32)
    trusted = b.import_aes_kek(value, "trusted", trusted=True)
    wrapped = b.wrap_private_key("k", trusted)
    restored = b.unwrap_private_key(wrapped, trusted, "k2", info.public_key)
    assert restored.public_point == info.public_point
    with pytest.raises(UnwrapError):
        b.unwrap_private_key(wrapped, plain, "k3", info.public_key)
    secret = os.urandom(24)
    assert b.unwrap_bytes(plain, b.wrap_bytes(plain, secret)) == secret
    eph = b.generate_ephemeral_keypair()
    peer = ec.generate_private_key(ec.SECP256R1())
    aes = b.ecdh_derive_aes(
        eph,
        peer.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
    )
    assert len(b.aes_ecb_encrypt_block(aes, bytes(16))) == 16
    b.destroy_ephemeral(eph)
    cert = create_root_certificate(b, "k", name("parity root"))
    board = issue_board_certificate(Issuer(b, "k", cert).check(), bytes(12), peer.public_key())
    assert board.issuer == cert.subject
    assert sorted(b.list_labels()) == ["fixed", "k", "k2", "plain"]  # a trusted KEK is a session object
