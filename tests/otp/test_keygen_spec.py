"""Key derivation (native batch keygen == the documented mapping through cryptography, wrapped
keys == RFC 5649 of PKCS#8 that cryptography loads) and spec validation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from nucore import keywrap
from pki.batch import OtpBatchError, keygen, load_spec
from tests.otp.conftest import SpecMaker


def test_native_keygen_is_used_and_matches_the_reference_mapping() -> None:
    assert keygen.keygen_backend() == "native"
    seeds = b"".join(hashlib.sha256(b"s%d" % i).digest() for i in range(64))
    native = keygen.keygen_batch(seeds)
    assert native == keygen.keygen_batch(seeds, force_python=True)
    privs, pubs = native
    for i in range(64):
        d = int.from_bytes(privs[32 * i : 32 * i + 32], "big")
        pub = ec.derive_private_key(d, ec.SECP256R1()).public_key()
        assert (
            pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
            == pubs[65 * i : 65 * i + 65]
        )


def test_native_seeds_are_hkdf_expand() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    prk = hashlib.sha256(b"prk").digest()
    uids = [hashlib.sha256(b"u%d" % i).digest()[:12] for i in range(9)]
    for batch_uids in (uids, [b""] * 9, []):
        native = keygen.board_seeds(prk, 2**40 + 5, batch_uids)
        assert native == keygen.board_seeds_reference(prk, 2**40 + 5, batch_uids)
        for k, uid in enumerate(batch_uids):
            info = keygen.SEED_INFO + (2**40 + 5 + k).to_bytes(8, "big") + uid
            assert native[32 * k : 32 * k + 32] == HKDFExpand(hashes.SHA256(), 32, info).derive(prk)


def test_seeds_depend_on_index_uid_and_batch() -> None:
    prk = keygen.seed_prk(b"\x01" * 32, b"\x02" * 16)
    a = keygen.board_seeds(prk, 0, [b"", b""])
    assert a[:32] != a[32:]
    assert keygen.board_seeds(prk, 1, [b""]) == a[32:]
    assert keygen.board_seeds(prk, 0, [b"\x00" * 12])[:32] != a[:32]
    assert keygen.board_seeds(keygen.seed_prk(b"\x01" * 32, b"\x03" * 16), 0, [b""]) != a[:32]


def test_wrapped_pkcs8_unwraps_to_the_key() -> None:
    dek = bytes(range(32))
    privs, pubs = keygen.keygen_batch(hashlib.sha256(b"x").digest())
    wrapped = keywrap.wrap_batch(dek, keygen.pkcs8_blobs(privs), keygen.PKCS8_LEN)
    assert len(wrapped) == keywrap.wrapped_len(keygen.PKCS8_LEN) == 80
    key = serialization.load_der_private_key(aes_key_unwrap_with_padding(dek, wrapped), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert (
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        == pubs
    )


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"count": 0}, r"\.yaml: count: Input should be greater than or equal to 1$"),
        ({"count": True}, r"\.yaml: count: Input should be a valid integer$"),
        ({"count": "10"}, r"\.yaml: count: Input should be a valid integer$"),
        ({"count": None}, r"\.yaml: give exactly one of `count` or `uids`$"),
        ({"layout_version": 2}, r"\.yaml: layout_version: must be 1$"),
        ({"root_cert": "/nonexistent.pem"}, r"^spec: cannot read root_cert /nonexistent.pem: "),
        ({"policy": {"secure_boot": True}}, r"\.yaml: unknown field 'secure_boot' in 'policy'$"),
        ({"hsm": {"uri": "pkcs11:token=x"}}, r"\.yaml: missing field 'hsm.kek_label'$"),
        (
            {"hsm": {"uri": "pkcs11:token=x?pin-value=1", "kek_label": "k", "signer_label": "s"}},
            r"\.yaml: hsm.uri: the HSM URI must not carry a PIN",
        ),
        ({"chunk_size": 1000}, r"\.yaml: chunk_size: must be a power of two, 1..65536$"),
        ({"chunk_size": 131072}, r"\.yaml: chunk_size: Input should be less than or equal to 65536$"),
        ({"cuont": 5}, r"\.yaml: unknown field 'cuont'$"),
    ],
)
def test_spec_errors_are_one_line_naming_the_field(
    make_spec: SpecMaker, over: dict[str, object], match: str
) -> None:
    with pytest.raises(OtpBatchError, match=match) as info:
        load_spec(make_spec(**over))
    assert "\n" not in str(info.value)


def test_uid_list_errors(make_spec: SpecMaker, tmp_path: Path) -> None:
    for content, match in (
        ("zz", "not 24 hex digits"),
        ("ff" * 12, "blank"),
        ("01" * 12 + "\n" + "01" * 12, "duplicates"),
    ):
        (tmp_path / "u.txt").write_text(content)
        with pytest.raises(OtpBatchError, match=match):
            load_spec(make_spec(count=None, uids="u.txt"))


def test_spec_not_yaml(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("a: [unclosed")
    with pytest.raises(OtpBatchError, match="not valid YAML"):
        load_spec(tmp_path / "s.yaml")
