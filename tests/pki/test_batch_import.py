"""``pki.hsm.batch_import.import_batch_key`` on a real SoftHSM2 token. The wrapped board key is made
with ``cryptography``'s RFC 5649 key wrap (an independent implementation) under a DEK that the token
itself wrapped under its non-extractable KEK: exactly the chain of a bulk OTP batch."""

from __future__ import annotations

import secrets
from typing import Any

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from pkcs11 import Attribute, ObjectClass

from pki.errors import DuplicateKeyError, KeyNotFoundError, UnwrapError
from pki.hsm.batch_import import import_batch_key
from pki.hsm.pkcs11 import Pkcs11Backend
from pki.hsm.softhsm import SoftHsmToken

KEK = "batch-kek"


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _batch(backend: Pkcs11Backend) -> tuple[bytes, bytes, ec.EllipticCurvePrivateKey, bytes]:
    """(wrapped_dek, dek, board key, wrapped board key) with the DEK wrapped by the token's KEK."""
    kek = backend.generate_aes_kek(KEK)
    dek = secrets.token_bytes(32)
    board = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = board.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return backend.wrap_bytes(kek, dek), dek, board, aes_key_wrap_with_padding(dek, pkcs8)


def test_imported_key_signs_for_its_public_key_and_stays_in_the_hsm(
    backend: Pkcs11Backend, token: SoftHsmToken
) -> None:
    wrapped_dek, _dek, board, wrapped = _batch(backend)
    info = import_batch_key(
        backend,
        kek_label=KEK,
        wrapped_dek=wrapped_dek,
        wrapped_key=wrapped,
        public_point=_point(board),
        label="nusec-sb-ABC",
    )
    assert info.public_point == _point(board)
    digest = secrets.token_bytes(32)
    board.public_key().verify(
        backend.sign_digest("nusec-sb-ABC", digest), digest, ec.ECDSA(Prehashed(hashes.SHA256()))
    )
    # the key is sensitive and non-extractable, and the DEK did not stay behind on the token
    lib = pkcs11.lib(token.module_path)
    with lib.get_token(token_label=token.label).open() as session:  # login state is shared in-process
        priv = next(
            session.get_objects({Attribute.LABEL: "nusec-sb-ABC", Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        )
        assert priv[Attribute.SENSITIVE] and not priv[Attribute.EXTRACTABLE]
        secrets_left = {
            k[Attribute.LABEL] for k in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
        }
        assert secrets_left == {KEK}


def test_wrong_public_key_wrong_blob_missing_kek_and_taken_label_are_refused(backend: Pkcs11Backend) -> None:
    wrapped_dek, dek, board, wrapped = _batch(backend)
    other = _point(ec.generate_private_key(ec.SECP256R1()))
    common: dict[str, Any] = {"kek_label": KEK, "wrapped_dek": wrapped_dek}
    with pytest.raises(UnwrapError, match="does not match"):
        import_batch_key(backend, **common, wrapped_key=wrapped, public_point=other, label="a")
    flipped = bytes([wrapped[0] ^ 1]) + wrapped[1:]
    with pytest.raises(UnwrapError):
        import_batch_key(backend, **common, wrapped_key=flipped, public_point=_point(board), label="b")
    with pytest.raises(UnwrapError, match="P-256"):
        import_batch_key(
            backend, **common, wrapped_key=wrapped, public_point=b"\x04" + b"\x01" * 64, label="c"
        )
    with pytest.raises(KeyNotFoundError, match="no KEK"):
        import_batch_key(
            backend,
            kek_label="nope",
            wrapped_dek=wrapped_dek,
            wrapped_key=wrapped,
            public_point=_point(board),
            label="d",
        )
    assert not {"a", "b", "c", "d"} & set(backend.list_labels())  # nothing left behind
    import_batch_key(backend, **common, wrapped_key=wrapped, public_point=_point(board), label="e")
    with pytest.raises(DuplicateKeyError):
        import_batch_key(backend, **common, wrapped_key=wrapped, public_point=_point(board), label="e")
    assert dek  # the clear DEK only ever existed in this test, as the oracle's input
