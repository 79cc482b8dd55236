"""P-256 against oracles nobody here wrote: cryptography (OpenSSL), python-ecdsa and RFC 6979."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from asn1crypto import algos
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from ecdsa import NIST256p, SigningKey
from ecdsa.util import sigencode_string
from hypothesis import given, settings
from hypothesis import strategies as st

from nucore import NativeError, p256
from nucore import p256_batch as pb

N = p256.ORDER
PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))
scalars = st.integers(min_value=1, max_value=N - 1)
seeds = st.binary(min_size=32, max_size=32)


def _crypto_key(d: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(d, ec.SECP256R1())


def _sec1(key: ec.EllipticCurvePublicKey, compressed: bool = False) -> bytes:
    fmt = (
        serialization.PublicFormat.CompressedPoint
        if compressed
        else serialization.PublicFormat.UncompressedPoint
    )
    return key.public_bytes(serialization.Encoding.X962, fmt)


def _raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# RFC 6979 appendix A.2.5 (P-256, SHA-256)
RFC_X = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
RFC_UX = "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
RFC_UY = "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
RFC_SIGS = {
    b"sample": (
        "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
        "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8",
    ),
    b"test": (
        "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
        "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083",
    ),
}


@pytest.mark.parametrize("msg", sorted(RFC_SIGS))
def test_rfc6979_a25_vectors(msg: bytes) -> None:
    key = p256.PrivateKey.from_bytes(RFC_X)
    assert key.public_key().to_sec1() == bytes.fromhex("04" + RFC_UX + RFC_UY)
    r, s = RFC_SIGS[msg]
    assert key.sign(msg, encoding="raw") == bytes.fromhex(r + s)
    assert pb.sign_batch(RFC_X, hashlib.sha256(msg).digest()) == bytes.fromhex(r + s)


def test_hedged_signature_matches_python_ecdsa_rfc6979_extra_entropy() -> None:
    key = p256.PrivateKey.from_bytes(RFC_X)
    ref = SigningKey.from_string(RFC_X, curve=NIST256p, hashfunc=hashlib.sha256)
    for extra in (b"\x01" * 32, b"board-serial-42", bytes(range(64))):
        ours = key.sign(b"sample", extra_entropy=extra, encoding="raw")
        theirs = ref.sign_deterministic(
            b"sample", hashfunc=hashlib.sha256, sigencode=sigencode_string, extra_entropy=extra
        )
        assert ours == theirs
        assert ours != key.sign(b"sample", encoding="raw")


@settings(max_examples=60, deadline=None)
@given(d=scalars, msg=st.binary(max_size=200))
def test_sign_verify_both_ways_against_cryptography(d: int, msg: bytes) -> None:
    ours = p256.PrivateKey.from_bytes(d.to_bytes(32, "big"))
    theirs = _crypto_key(d)
    assert ours.public_key().to_sec1() == _sec1(theirs.public_key())
    theirs.public_key().verify(ours.sign(msg), msg, ec.ECDSA(hashes.SHA256()))
    ours.public_key().verify(theirs.sign(msg, ec.ECDSA(hashes.SHA256())), msg)
    # a flipped digest bit must fail on both sides
    digest = bytearray(hashlib.sha256(msg).digest())
    digest[0] ^= 1
    sig = ours.sign(msg, encoding="raw")
    assert not ours.public_key().is_valid_signature(sig, bytes(digest), prehashed=True, encoding="raw")
    with pytest.raises(CryptoInvalidSignature):
        theirs.public_key().verify(p256.signature_to_der(sig), bytes(digest), PREHASHED)


@settings(max_examples=60, deadline=None)
@given(a=scalars, b=scalars)
def test_ecdh_agrees_with_cryptography(a: int, b: int) -> None:
    ours = p256.PrivateKey.from_bytes(a.to_bytes(32, "big"))
    peer = _crypto_key(b)
    expected = _crypto_key(a).exchange(ec.ECDH(), peer.public_key())
    for compressed in (False, True):
        pub = p256.PublicKey.from_sec1(_sec1(peer.public_key(), compressed))
        assert ours.exchange(pub) == expected
        assert p256.ecdh(ours, pub) == expected


EDGE_SCALARS = [
    1,
    2,
    3,
    15,
    16,
    17,
    31,
    32,
    33,
    64,
    2**128,
    2**255,
    N - 1,
    N - 2,
    N - 3,
    *(N - 2 * j for j in range(1, 17)),
]


@pytest.mark.parametrize("d", EDGE_SCALARS)
def test_edge_scalars_keygen_and_ecdh(d: int) -> None:
    """Small scalars and n-2j hit the exceptional additions of the window methods."""
    theirs = _crypto_key(d)
    ours = p256.PrivateKey.from_bytes(d.to_bytes(32, "big"))
    assert ours.public_key().to_sec1() == _sec1(theirs.public_key())
    peer = _crypto_key(0xC0FFEE)
    assert ours.exchange(p256.PublicKey.from_sec1(_sec1(peer.public_key()))) == theirs.exchange(
        ec.ECDH(), peer.public_key()
    )
    table = pb.PeerTable(p256.PublicKey.from_sec1(_sec1(peer.public_key())))
    assert table.ecdh_batch(d.to_bytes(32, "big")) == theirs.exchange(ec.ECDH(), peer.public_key())


@settings(max_examples=40, deadline=None)
@given(d=scalars)
def test_encodings_round_trip(d: int) -> None:
    pub = _crypto_key(d).public_key()
    key = p256.PublicKey.from_sec1(_sec1(pub))
    assert key.to_sec1(compressed=True) == _sec1(pub, compressed=True)
    assert p256.PublicKey.from_sec1(key.to_sec1(compressed=True)) == key
    spki = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert p256.PublicKey.from_spki_der(spki) == key
    assert key.to_spki_der() == spki


@settings(max_examples=100, deadline=None)
@given(r=st.integers(min_value=0, max_value=2**256 - 1), s=st.integers(min_value=0, max_value=2**256 - 1))
def test_der_round_trip_against_asn1crypto(r: int, s: int) -> None:
    """The one r||s <-> DER owner (built on cryptography) agrees with an independent encoder,
    asn1crypto's IEEE P1363 conversion, both ways."""
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = algos.DSASignature.from_p1363(raw).dump()
    assert p256.signature_to_der(raw) == der
    assert p256.signature_from_der(der) == raw


def test_der_of_openssl_signature(tmp_path: Path) -> None:
    """A signature made by ``openssl dgst -sign`` converts to an r||s that verifies, and back."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "k.pem").write_bytes(pem)
    (tmp_path / "m").write_bytes(b"message")
    der = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(tmp_path / "k.pem"), str(tmp_path / "m")],
        check=True,
        capture_output=True,
    ).stdout
    raw = p256.signature_from_der(der)
    assert p256.signature_to_der(raw) == der
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    p256.PublicKey.from_sec1(point).verify(raw, b"message", encoding="raw")


def _decode_or_none(der: bytes) -> tuple[int, int] | None:
    try:
        r, s = decode_dss_signature(der)
    except ValueError:
        return None
    return (r, s) if 0 <= r < 2**256 and 0 <= s < 2**256 else None


mutations = st.lists(
    st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, 80), st.integers(0, 255)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(r=st.integers(0, 2**257), s=st.integers(0, 2**256 - 1), edits=mutations)
def test_strict_der_parser_agrees_with_cryptography_on_mutated_input(
    r: int, s: int, edits: list[tuple[str, int, int]]
) -> None:
    """Mutated DER (bytes changed, inserted, removed): we accept exactly what cryptography's
    strict DER decoder accepts (for values that fit 32 bytes), with the same r and s."""
    der = bytearray(encode_dss_signature(r, s))
    for op, pos, value in edits:
        i = min(pos, len(der))
        if op == "insert":
            der.insert(i, value)
        elif der and op == "set":
            der[min(i, len(der) - 1)] = value
        elif der:
            del der[min(i, len(der) - 1)]
    expected = _decode_or_none(bytes(der))
    try:
        raw = p256.signature_from_der(bytes(der))
        got: tuple[int, int] | None = (int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    except NativeError:
        got = None
    assert got == expected


@pytest.mark.parametrize(
    "der",
    [
        "3006020101020101" + "00",  # trailing byte
        "3007020101020101",  # sequence length too long
        "30060201010201ff",  # negative s
        "300702020001020101",  # non-minimal r
        "308106020101020101",  # long-form length
        "3006020101030101",  # wrong tag
        "3004020101",
        "",
    ],
)
def test_malformed_der_rejected(der: str) -> None:
    with pytest.raises(NativeError):
        p256.signature_from_der(bytes.fromhex(der))


@settings(max_examples=25, deadline=None)
@given(st.lists(seeds, min_size=1, max_size=70, unique=True))
def test_batch_equals_single(seed_list: list[bytes]) -> None:
    n = len(seed_list)
    privs, pubs = pb.keygen_batch(b"".join(seed_list))
    keys = [p256.PrivateKey.from_seed(s) for s in seed_list]
    assert privs == b"".join(k.to_bytes() for k in keys)
    assert pubs == b"".join(k.public_key().to_sec1() for k in keys)
    digests = b"".join(hashlib.sha256(s).digest() for s in seed_list)
    sigs = pb.sign_batch(privs, digests)
    assert sigs == b"".join(
        k.sign(digests[32 * i : 32 * i + 32], prehashed=True, encoding="raw") for i, k in enumerate(keys)
    )
    assert pb.verify_batch(pubs, digests, sigs) == [True] * n
    one = pb.sign_batch(privs[:32], digests, extra_entropy=b"hedge")
    assert pb.verify_batch(pubs[:65], digests, one) == [True] * n
    bad = bytearray(sigs)
    bad[-1] ^= 1
    assert pb.verify_batch(pubs, digests, bytes(bad)) == [True] * (n - 1) + [False]
    peer = keys[0].public_key()
    secrets = pb.ecdh_batch(privs, peer.to_sec1())
    assert secrets == b"".join(k.exchange(peer) for k in keys)
    table = pb.PeerTable(peer)
    assert table.ecdh_batch(privs) == secrets
    own = pb.sign_batch(privs[:32], digests)
    assert table.verify_batch(digests, own) == [True] * n
    assert table.verify_batch(digests, sigs) == [i == 0 for i in range(n)]
    assert pb.ecdh_batch(privs[:32], pubs) == b"".join(keys[0].exchange(k.public_key()) for k in keys)


def test_same_key_batches_take_the_table_path_and_agree() -> None:
    n = pb.TABLE_THRESHOLD + 8
    keys = [p256.PrivateKey.from_seed(hashlib.sha256(b"k%d" % i).digest()) for i in range(n)]
    privs = b"".join(k.to_bytes() for k in keys)
    digests = b"".join(hashlib.sha256(b"m%d" % i).digest() for i in range(n))
    signer, peer = keys[0], keys[1].public_key()
    sigs = pb.sign_batch(signer.to_bytes(), digests)
    pub = signer.public_key().to_sec1()
    expected = [
        signer.public_key().is_valid_signature(
            sigs[64 * i : 64 * i + 64], digests[32 * i : 32 * i + 32], prehashed=True, encoding="raw"
        )
        for i in range(n)
    ]
    assert expected == [True] * n
    bad = bytearray(sigs)
    bad[64 * 5 + 40] ^= 4
    assert pb.verify_batch(pub, digests, bytes(bad)) == [i != 5 for i in range(n)]
    assert pb.verify_batch(pub, digests[:256], bytes(bad[:512])) == [i != 5 for i in range(8)]  # no table
    assert pb.ecdh_batch(privs, peer.to_sec1()) == b"".join(k.exchange(peer) for k in keys)
    off = bytearray(pub)
    off[-1] ^= 1
    assert pb.verify_batch(bytes(off), digests, sigs) == [False] * n
    with pytest.raises(NativeError, match="item 0: public key"):
        pb.ecdh_batch(privs, bytes(off))
    with pytest.raises(NativeError, match="item 3: private key"):
        pb.ecdh_batch(privs[:96] + N.to_bytes(32, "big") + privs[128:], peer.to_sec1())


def test_batch_threads_match_single_thread() -> None:
    seed_blob = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(200))
    privs, pubs = pb.keygen_batch(seed_blob)
    assert pb.keygen_batch(seed_blob, threads=2) == (privs, pubs)
    digests = seed_blob
    sigs = pb.sign_batch(privs, digests)
    assert pb.sign_batch(privs, digests, threads=2) == sigs
    assert pb.verify_batch(pubs, digests, sigs, threads=2) == [True] * 200
    assert pb.ecdh_batch(privs, pubs[:65], threads=2) == pb.ecdh_batch(privs, pubs[:65])


def test_seed_mapping_is_the_documented_hkdf() -> None:
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    for i in range(20):
        seed = hashlib.sha256(bytes([i])).digest()
        cand = HKDF(hashes.SHA256(), 32, salt=b"NuSec P-256 keygen v1", info=b"\x00").derive(seed)
        assert 1 <= int.from_bytes(cand, "big") < N  # first candidate is kept with prob 1 - 2^-32
        assert p256.scalar_from_seed(seed) == cand
        assert p256.PrivateKey.from_seed(seed).to_bytes() == cand


def test_invalid_inputs_raise_clear_errors() -> None:
    with pytest.raises(NativeError, match="not in"):
        p256.PrivateKey.from_bytes(b"\x00" * 32)
    with pytest.raises(NativeError, match="not in"):
        p256.PrivateKey.from_bytes(N.to_bytes(32, "big"))
    with pytest.raises(NativeError, match="32 bytes"):
        p256.PrivateKey.from_seed(b"short")
    g = _sec1(_crypto_key(1).public_key())
    off = bytearray(g)
    off[-1] ^= 1
    for bad in (bytes(off), b"\x00", b"\x04" + b"\xff" * 64, b"\x02" + b"\xff" * 32, g[:64], b""):
        with pytest.raises(NativeError, match="not a valid P-256 public key"):
            p256.PublicKey.from_sec1(bad)
    with pytest.raises(NativeError, match="item 1"):
        pb.ecdh_batch(b"\x01" * 32, g + bytes(off))
    with pytest.raises(NativeError, match="private key 0"):
        pb.sign_batch(b"\x00" * 32, b"\x00" * 32)
    key = p256.PrivateKey.generate()
    with pytest.raises(p256.InvalidSignature):
        key.public_key().verify(b"\x30\x00", b"msg")


def test_private_scalar_not_in_repr() -> None:
    key = p256.PrivateKey.from_bytes(RFC_X)
    text = repr(key) + str(key)
    assert RFC_X.hex() not in text.lower()
    assert "PrivateKey(public=" in text
