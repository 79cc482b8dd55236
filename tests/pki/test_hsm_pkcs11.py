"""The PKCS#11 backend against real SoftHSM2: keys, signatures, ECDH, wrapping, errors, threads.

Oracles: ``cryptography`` (signature verification, ECDH, AES, RFC 5649 unwrap) and the token's
own attributes read back through python-pkcs11.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11e

from pki.errors import (
    DuplicateKeyError,
    HsmError,
    KeyNotFoundError,
    KeyNotWrappableError,
    PinIncorrectError,
    Pkcs11ModuleError,
    TokenNotFoundError,
    UnwrapError,
)
from pki.hsm.backend import KeyBackend, KeyPolicy, SecretKeyKind
from pki.hsm.pkcs11 import Pkcs11Backend
from pki.hsm.softhsm import SoftHsmDir, SoftHsmToken

DIGEST = hashlib.sha256(b"NuSec").digest()


def point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def verify(key: ec.EllipticCurvePublicKey, der_sig: bytes, digest: bytes = DIGEST) -> None:
    key.verify(der_sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def raw_attrs(
    token: SoftHsmToken, label: str, cls: ObjectClass, attrs: list[Attribute]
) -> dict[Attribute, object]:
    """Read attributes straight from the token with python-pkcs11 (a second, independent session)."""
    lib = pkcs11.lib(token.module_path)
    tok = lib.get_token(token_label=token.label)
    with tok.open() as session:  # public session: login state is shared in-process
        obj = next(session.get_objects({Attribute.LABEL: label, Attribute.CLASS: cls}))
        return obj.get_attributes(attrs)


def test_backend_satisfies_protocol(backend: Pkcs11Backend) -> None:
    assert isinstance(backend, KeyBackend)


def test_generate_sign_verify(backend: Pkcs11Backend) -> None:
    info = backend.generate_ec_keypair("sb-key")
    assert backend.public_key("sb-key") == info.public_key
    assert info.key_id == hashlib.sha1(info.public_point).digest()  # CKA_ID = SKI
    verify(info.public_key, backend.sign_digest("sb-key", DIGEST))
    raw = backend.sign_digest_raw("sb-key", DIGEST)
    assert len(raw) == 64
    sig = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    verify(info.public_key, sig)
    with pytest.raises(InvalidSignature):
        verify(info.public_key, sig, hashlib.sha256(b"other").digest())


def test_private_key_attributes(backend: Pkcs11Backend, token: SoftHsmToken) -> None:
    backend.generate_ec_keypair("plain")
    backend.generate_ec_keypair("ca", policy=KeyPolicy.ca_key())
    names = [
        Attribute.TOKEN,
        Attribute.SENSITIVE,
        Attribute.EXTRACTABLE,
        Attribute.PRIVATE,
        Attribute.WRAP_WITH_TRUSTED,
    ]
    plain = raw_attrs(token, "plain", ObjectClass.PRIVATE_KEY, names)
    assert plain[Attribute.TOKEN] and plain[Attribute.SENSITIVE] and plain[Attribute.PRIVATE]
    assert not plain[Attribute.EXTRACTABLE] and not plain[Attribute.WRAP_WITH_TRUSTED]
    ca = raw_attrs(token, "ca", ObjectClass.PRIVATE_KEY, names)
    assert ca[Attribute.SENSITIVE] and ca[Attribute.EXTRACTABLE] and ca[Attribute.WRAP_WITH_TRUSTED]


def test_duplicate_label_refused_unless_reuse(backend: Pkcs11Backend) -> None:
    first = backend.generate_ec_keypair("dup")
    with pytest.raises(DuplicateKeyError, match="already exists"):
        backend.generate_ec_keypair("dup")
    again = backend.generate_ec_keypair("dup", reuse=True)
    assert again == first
    assert backend.list_labels() == ["dup"]
    with pytest.raises(DuplicateKeyError, match="id"):
        backend.generate_ec_keypair("other", key_id=first.key_id)


def test_missing_key_and_destroy(backend: Pkcs11Backend) -> None:
    with pytest.raises(KeyNotFoundError, match="nope"):
        backend.sign_digest("nope", DIGEST)
    with pytest.raises(KeyNotFoundError):
        backend.public_key("nope")
    assert backend.find_ec_keypair("nope") is None
    backend.generate_ec_keypair("gone")
    backend.destroy_keypair("gone")
    assert backend.find_ec_keypair("gone") is None
    with pytest.raises(KeyNotFoundError):
        backend.destroy_keypair("gone")


def test_digest_length_checked(backend: Pkcs11Backend) -> None:
    backend.generate_ec_keypair("k")
    with pytest.raises(HsmError, match="32 bytes"):
        backend.sign_digest("k", b"\x00" * 20)


def test_ecdh_matches_cryptography_and_key_stays_inside(backend: Pkcs11Backend, token: SoftHsmToken) -> None:
    eph = backend.generate_ephemeral_keypair()
    board = ec.generate_private_key(ec.SECP256R1())
    aes = backend.ecdh_derive_aes(eph, point(board.public_key()), label="aes-board", persistent=True)
    z = board.exchange(ec.ECDH(), eph.public_key)  # x-coordinate = AES-256 key (CKD_NULL)
    block = os.urandom(16)
    enc = Cipher(algorithms.AES(z), modes.ECB()).encryptor()
    assert backend.aes_ecb_encrypt_block(aes, block) == enc.update(block) + enc.finalize()
    attrs = raw_attrs(
        token, "aes-board", ObjectClass.SECRET_KEY, [Attribute.SENSITIVE, Attribute.EXTRACTABLE]
    )
    assert attrs[Attribute.SENSITIVE] and not attrs[Attribute.EXTRACTABLE]
    found = backend.find_secret_key("aes-board")
    assert found is not None and backend.aes_ecb_encrypt_block(found, block) == backend.aes_ecb_encrypt_block(
        aes, block
    )
    backend.destroy_ephemeral(eph)
    backend.destroy_ephemeral(eph)  # idempotent
    with pytest.raises(HsmError):
        backend.ecdh_derive_aes(eph, point(board.public_key()))


def test_ecdh_rejects_bad_peer_points(backend: Pkcs11Backend) -> None:
    eph = backend.generate_ephemeral_keypair()
    with pytest.raises(HsmError, match="65-byte"):
        backend.ecdh_derive_aes(eph, b"\x04" + b"\x01" * 32)
    off_curve = b"\x04" + b"\x01" * 64
    with pytest.raises(HsmError, match="not on P-256"):
        backend.ecdh_derive_aes(eph, off_curve)


def test_signing_key_cannot_derive(backend: Pkcs11Backend) -> None:
    backend.generate_ec_keypair("signer")
    peer = point(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(HsmError):
        backend.ecdh_derive_aes("signer", peer)
    backend.generate_ec_keypair("deriver", policy=KeyPolicy(derive=True))
    backend.ecdh_derive_aes("deriver", peer)


def test_non_extractable_key_is_not_wrappable(backend: Pkcs11Backend) -> None:
    backend.generate_ec_keypair("fixed")
    kek = backend.generate_aes_kek("kek")
    with pytest.raises(KeyNotWrappableError):
        backend.wrap_private_key("fixed", kek)


def test_ca_key_needs_trusted_kek(backend: Pkcs11Backend) -> None:
    info = backend.generate_ec_keypair("root", policy=KeyPolicy.ca_key())
    plain_kek = backend.generate_aes_kek("plain-kek")
    with pytest.raises(KeyNotWrappableError):
        backend.wrap_private_key("root", plain_kek)
    kek_value = os.urandom(32)
    trusted = backend.import_aes_kek(kek_value, "trusted-kek", trusted=True)
    wrapped = backend.wrap_private_key("root", trusted)
    # Independent oracle: RFC 5649 unwrap in cryptography gives the PKCS#8 of the same key.
    padded = aes_key_unwrap_with_padding(kek_value, wrapped)
    # SoftHSM2 2.6.1 zero-pads the 67-byte PKCS#8 to 72 before wrapping: cut at the DER length.
    assert padded[0] == 0x30 and padded[1] < 0x80
    pkcs8, tail = padded[: 2 + padded[1]], padded[2 + padded[1] :]
    assert tail == bytes(len(tail)) and len(padded) % 8 == 0
    private = serialization.load_der_private_key(pkcs8, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.public_key() == info.public_key
    # The earlier KEK handle (a token object) survives the security-officer re-login.
    backend.wrap_bytes(plain_kek, b"still usable 16b")
    backend.destroy_secret_key(trusted)
    assert backend.find_secret_key("trusted-kek") is None


def test_trusted_kek_needs_so_pin(token: SoftHsmToken) -> None:
    with token.open_backend(with_so_pin=False) as b:
        with pytest.raises(HsmError, match="security-officer PIN"):
            b.generate_aes_kek("t", trusted=True)


def test_backup_and_restore_into_fresh_token(hsm_dir: SoftHsmDir, token: SoftHsmToken) -> None:
    kek_value = os.urandom(32)
    with token.open_backend() as src:
        info = src.generate_ec_keypair("root", policy=KeyPolicy.ca_key())
        kek = src.import_aes_kek(kek_value, "backup-kek", trusted=True)
        wrapped = src.wrap_private_key("root", kek)
        src.destroy_secret_key(kek)
    fresh = hsm_dir.init_token("restore")
    with fresh.open_backend() as dst:
        kek = dst.import_aes_kek(kek_value, "restore-kek", trusted=True)
        with pytest.raises(UnwrapError, match="does not match"):
            other = ec.generate_private_key(ec.SECP256R1()).public_key()
            dst.unwrap_private_key(wrapped, kek, "wrong", other, policy=KeyPolicy.ca_key())
        assert dst.find_ec_keypair("wrong") is None
        restored = dst.unwrap_private_key(wrapped, kek, "root", info.public_key, policy=KeyPolicy.ca_key())
        assert restored.public_key == info.public_key
        verify(info.public_key, dst.sign_digest("root", DIGEST))
        with pytest.raises(DuplicateKeyError):
            dst.unwrap_private_key(wrapped, kek, "root", info.public_key)
        bad_kek = dst.import_aes_kek(os.urandom(32))
        with pytest.raises(UnwrapError):
            dst.unwrap_private_key(wrapped, bad_kek, "root2", info.public_key)
        # The restored CA key is again wrappable only by a trusted KEK.
        with pytest.raises(KeyNotWrappableError):
            dst.wrap_private_key("root", bad_kek)


def test_wrap_bytes_round_trip_and_oracle(backend: Pkcs11Backend) -> None:
    kek_value = os.urandom(32)
    kek = backend.import_aes_kek(kek_value, "otp-kek", persistent=True)
    for secret in (os.urandom(8), os.urandom(16), os.urandom(32), os.urandom(1024)):
        wrapped = backend.wrap_bytes(kek, secret)
        assert aes_key_unwrap_with_padding(kek_value, wrapped) == secret
        assert backend.unwrap_bytes(kek, wrapped) == secret
    with pytest.raises(UnwrapError):
        backend.unwrap_bytes(kek, bytes(24))
    for bad in (b"", b"\x01", os.urandom(17), os.urandom(1032)):
        with pytest.raises(HsmError, match="multiple of 8"):
            backend.wrap_bytes(kek, bad)


def test_unwrap_to_key_stays_in_hsm(backend: Pkcs11Backend, token: SoftHsmToken) -> None:
    kek = backend.generate_aes_kek("gen-kek")
    assert backend.generate_aes_kek("gen-kek", reuse=True).label == "gen-kek"
    with pytest.raises(DuplicateKeyError):
        backend.generate_aes_kek("gen-kek")
    value = os.urandom(32)
    key = backend.unwrap_to_key(kek, backend.wrap_bytes(kek, value), label="board-aes", persistent=True)
    assert key.kind is SecretKeyKind.AES
    block = os.urandom(16)
    enc = Cipher(algorithms.AES(value), modes.ECB()).encryptor()
    assert backend.aes_ecb_encrypt_block(key, block) == enc.update(block) + enc.finalize()
    attrs = raw_attrs(
        token, "board-aes", ObjectClass.SECRET_KEY, [Attribute.SENSITIVE, Attribute.EXTRACTABLE]
    )
    assert attrs[Attribute.SENSITIVE] and not attrs[Attribute.EXTRACTABLE]
    kek_attrs = raw_attrs(
        token, "gen-kek", ObjectClass.SECRET_KEY, [Attribute.SENSITIVE, Attribute.EXTRACTABLE]
    )
    assert kek_attrs[Attribute.SENSITIVE] and not kek_attrs[Attribute.EXTRACTABLE]


def test_random_bytes(backend: Pkcs11Backend) -> None:
    a, b = backend.random_bytes(32), backend.random_bytes(32)
    assert len(a) == 32 and a != b


def test_wrong_pin_message_has_no_pin(token: SoftHsmToken) -> None:
    wrong = "wrong-pin-7c1f"
    with pytest.raises(PinIncorrectError) as err:
        Pkcs11Backend(token.module_path, token.label, wrong)
    assert wrong not in str(err.value) and token.pin not in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(PinIncorrectError):
        Pkcs11Backend(token.module_path, token.label, "12")  # shorter than the token allows
    # And with a backend already open (shared login), a wrong PIN is still refused.
    with token.open_backend():
        with pytest.raises(PinIncorrectError):
            Pkcs11Backend(token.module_path, token.label, wrong)


def test_missing_token_and_module(token: SoftHsmToken) -> None:
    with pytest.raises(TokenNotFoundError, match="no-such-token"):
        Pkcs11Backend(token.module_path, "no-such-token", token.pin)
    with pytest.raises(Pkcs11ModuleError, match="not found"):
        Pkcs11Backend("/nonexistent/libpkcs11.so", token.label, token.pin)


def test_from_uri_with_pin_file(token: SoftHsmToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUSEC_HSM_PIN", raising=False)
    pin_file = token.write_pin_file(tmp_path / "pin")
    assert (pin_file.stat().st_mode & 0o777) == 0o600
    with Pkcs11Backend.from_uri(str(token.uri(pin_file))) as b:
        b.generate_ec_keypair("via-uri")
    monkeypatch.setenv("NUSEC_HSM_PIN", token.pin)
    with Pkcs11Backend.from_uri(f"pkcs11:token={token.label}") as b:
        assert b.find_ec_keypair("via-uri") is not None


def test_closed_backend_refuses(token: SoftHsmToken) -> None:
    b = token.open_backend()
    b.close()
    b.close()
    with pytest.raises(HsmError, match="closed"):
        b.sign_digest("x", DIGEST)


def test_two_backends_share_the_token(token: SoftHsmToken) -> None:
    a = token.open_backend()
    b = token.open_backend()
    a.generate_ec_keypair("shared")
    a.close()  # must not log b out
    verify(b.public_key("shared"), b.sign_digest("shared", DIGEST))
    b.close()


def test_concurrent_threads(backend: Pkcs11Backend) -> None:
    backend.generate_ec_keypair("hot")
    public = backend.public_key("hot")

    def sign(i: int) -> None:
        digest = hashlib.sha256(i.to_bytes(4, "big")).digest()
        verify(public, backend.sign_digest("hot", digest), digest)

    def derive(_: int) -> bytes:
        eph = backend.generate_ephemeral_keypair()
        peer = ec.generate_private_key(ec.SECP256R1())
        key = backend.ecdh_derive_aes(eph, point(peer.public_key()))
        out = backend.aes_ecb_encrypt_block(key, bytes(16))
        enc = Cipher(algorithms.AES(peer.exchange(ec.ECDH(), eph.public_key)), modes.ECB()).encryptor()
        assert out == enc.update(bytes(16))
        backend.destroy_secret_key(key)
        backend.destroy_ephemeral(eph)
        return out

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(sign, range(200)))
        list(pool.map(derive, range(40)))

    # Eight threads racing to create the same label: exactly one key pair results.
    barrier = threading.Barrier(8)

    def create(_: int) -> bytes:
        barrier.wait()
        return backend.generate_ec_keypair("race", reuse=True).public_point

    with ThreadPoolExecutor(8) as pool:
        points = set(pool.map(create, range(8)))
    assert len(points) == 1
    assert backend.list_labels().count("race") == 1


def test_unwrap_software_wrapped_key_under_unwrapped_dek(backend: Pkcs11Backend) -> None:
    """Bulk-OTP flow: a DEK wrapped under the HSM KEK, a board key wrapped (RFC 5649, outside the
    HSM) under the DEK; both unwrapped inside the HSM, the DEK with a session-only template."""
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    kek = backend.generate_aes_kek("batch-kek")
    dek_value = os.urandom(32)
    dek = backend.unwrap_to_key(kek, backend.wrap_bytes(kek, dek_value))
    board = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = board.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    wrapped = aes_key_wrap_with_padding(dek_value, pkcs8)
    info = backend.unwrap_private_key(wrapped, dek, "board-sb", board.public_key())
    verify(board.public_key(), backend.sign_digest("board-sb", DIGEST))
    assert info.key_id == hashlib.sha1(point(board.public_key())).digest()
    backend.destroy_secret_key(dek)
    # A session KEK (not trusted) may unwrap CA keys too; only wrapping needs the trusted KEK.
    session_kek = backend.import_aes_kek(dek_value)
    backend.unwrap_private_key(
        wrapped, session_kek, "board-sb-2", board.public_key(), policy=KeyPolicy.ca_key()
    )
    with pytest.raises(KeyNotWrappableError):
        backend.wrap_private_key("board-sb-2", session_kek)


def test_signing_cache_follows_destroy_and_outside_changes(
    backend: Pkcs11Backend, token: SoftHsmToken
) -> None:
    first = backend.generate_ec_keypair("cached")
    verify(first.public_key, backend.sign_digest("cached", DIGEST))
    backend.destroy_keypair("cached")
    second = backend.generate_ec_keypair("cached")
    assert backend.public_key("cached") == second.public_key
    verify(second.public_key, backend.sign_digest("cached", DIGEST))
    # Destroyed behind the backend's back (as another process would): the next sign says so.
    lib = pkcs11.lib(token.module_path)
    with lib.get_token(token_label=token.label).open(rw=True) as session:
        for obj in session.get_objects({Attribute.LABEL: "cached"}):
            obj.destroy()
    with pytest.raises(KeyNotFoundError):
        backend.sign_digest("cached", DIGEST)


def test_wrong_so_pin_leaves_user_session_working(token: SoftHsmToken) -> None:
    with Pkcs11Backend(token.module_path, token.label, token.pin, so_pin="wrong-so-pin") as b:
        b.generate_ec_keypair("before")
        with pytest.raises(PinIncorrectError, match="security-officer") as err:
            b.generate_aes_kek("t", trusted=True)
        assert "wrong-so-pin" not in str(err.value)
        assert b.find_secret_key("t") is None
        verify(b.public_key("before"), b.sign_digest("before", DIGEST))


def _token_bytes(hsm_dir: SoftHsmDir) -> bytes:
    """Every byte of every file under the SoftHSM2 token directory."""
    return b"".join(p.read_bytes() for p in sorted(hsm_dir.token_dir.rglob("*")) if p.is_file())


def test_trusted_kek_is_a_session_object_never_written_to_the_token_dir(
    hsm_dir: SoftHsmDir, token: SoftHsmToken
) -> None:
    """Defect 1: a trusted KEK made as a public token object sat in clear in the token files."""
    value = os.urandom(32)
    with token.open_backend() as b:
        b.generate_ec_keypair("root", policy=KeyPolicy.ca_key())
        kek = b.import_aes_kek(value, "backup-kek", trusted=True)
        assert not kek.persistent
        assert value not in _token_bytes(hsm_dir)  # while it exists and is in use
        wrapped = b.wrap_private_key("root", kek)
        assert aes_key_unwrap_with_padding(value, wrapped)[0] == 0x30
        assert value not in _token_bytes(hsm_dir)
        assert b.find_secret_key("backup-kek") is not None  # visible to this session only
        assert "backup-kek" not in b.list_labels()  # not a token object
        generated = b.generate_aes_kek("proof", trusted=True)
        assert not generated.persistent
        b.destroy_secret_key(generated)
    with token.open_backend() as b:  # a new session: the KEK is gone with the old one
        assert b.find_secret_key("backup-kek") is None


def test_ca_key_attributes_read_back_frozen(backend: Pkcs11Backend) -> None:
    """Defect 6: CA keys were MODIFIABLE and COPYABLE; the read-back is what the token says."""
    backend.generate_ec_keypair("root", policy=KeyPolicy.ca_key())
    attrs = backend.key_attributes("root")
    for name_, want in KeyPolicy.ca_key().required().items():
        assert attrs[name_] is want, name_
    assert attrs["DECRYPT"] is False and attrs["UNWRAP"] is False and attrs["SIGN_RECOVER"] is False
    plain = backend.generate_ec_keypair("plain")
    assert backend.key_attributes("plain")["MODIFIABLE"] is True  # only CA keys are frozen
    assert plain.key_id == hashlib.sha1(plain.public_point).digest()


def test_softhsm_unwrap_refuses_modifiable_and_copyable_false_together(backend: Pkcs11Backend) -> None:
    """The module fact behind restore's template: C_UnwrapKey with both MODIFIABLE and COPYABLE
    false fails with AttributeReadOnly and leaves a partial object behind, so restore asks for
    MODIFIABLE false only (and records COPYABLE as read)."""
    info = backend.generate_ec_keypair("root", policy=KeyPolicy.ca_key())
    value = os.urandom(32)
    kek = backend.import_aes_kek(value, "k", trusted=True)
    wrapped = backend.wrap_private_key("root", kek)
    lib = pkcs11.lib(backend.module_path)
    tok = lib.get_token(token_label=backend.token_label)
    with tok.open(rw=True) as session:  # login state is shared in-process
        raw_kek = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.AES,
                Attribute.TOKEN: False,
                Attribute.UNWRAP: True,
                Attribute.VALUE: value,
            }
        )
        before = len(list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})))
        with pytest.raises(p11e.AttributeReadOnly):
            raw_kek.unwrap_key(  # type: ignore[attr-defined]  # python-pkcs11's untyped mixins
                ObjectClass.PRIVATE_KEY,
                pkcs11.KeyType.EC,
                wrapped,
                label="pair",
                store=True,
                mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD,
                template={
                    Attribute.ENCRYPT: pkcs11.DEFAULT,
                    Attribute.VERIFY: pkcs11.DEFAULT,
                    Attribute.WRAP: pkcs11.DEFAULT,
                    Attribute.SENSITIVE: True,
                    Attribute.MODIFIABLE: False,
                    Attribute.COPYABLE: False,
                },
            )
        after = len(list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})))
        assert after == before + 1  # the debris
    restored = backend.unwrap_private_key(
        wrapped, kek, "restored", info.public_key, policy=KeyPolicy.ca_key()
    )
    attrs = backend.key_attributes(restored.label)
    assert attrs["MODIFIABLE"] is False and attrs["WRAP_WITH_TRUSTED"] is True and attrs["SENSITIVE"] is True
