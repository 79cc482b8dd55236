"""CSR policy and CSR building, checked with ``openssl req -verify`` and by issuing from CSRs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.ca import (
    assemble_csr,
    board_csr_info,
    build_board_csr,
    build_csr,
    check_board_csr,
    issue_board_certificate_from_csr,
    load_csr,
)
from pki.ca.profiles import board_subject
from pki.errors import (
    CsrError,
    CsrExtensionError,
    CsrKeyTypeError,
    CsrMalformedError,
    CsrSignatureError,
    CsrSubjectError,
)
from pki.hsm.pkcs11 import Pkcs11Backend
from tests.pki.conftest import Chain, openssl

UID = bytes.fromhex("00112233445566778899aabb")


def pem(csr: x509.CertificateSigningRequest | bytes) -> bytes:
    if isinstance(csr, bytes):
        return x509.load_der_x509_csr(csr).public_bytes(serialization.Encoding.PEM)
    return csr.public_bytes(serialization.Encoding.PEM)


def openssl_req_verify(tmp_path: Path, data: bytes, inform: str = "PEM") -> bool:
    path = tmp_path / "req.csr"
    path.write_bytes(data)
    res = openssl("req", "-verify", "-noout", "-inform", inform, "-in", path)
    # OpenSSL 3.0 exits 0 even on "verify failure": read its verdict too.
    verdict = res.stdout + res.stderr
    return res.returncode == 0 and "verify OK" in verdict and "failure" not in verdict


def test_built_board_csr_verifies_with_openssl(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = build_board_csr(key, UID)
    assert openssl_req_verify(tmp_path, pem(csr))
    assert check_board_csr(csr, UID) == key.public_key()


def test_two_part_csr_signed_by_hsm_key(tmp_path: Path, backend: Pkcs11Backend) -> None:
    """The seed flow: info built outside, signed by a key we cannot read (here an HSM key)."""
    info = backend.generate_ec_keypair("board-identity")
    cri = board_csr_info(UID, info.public_key)
    sig = backend.sign_digest("board-identity", hashlib.sha256(cri).digest())
    der = assemble_csr(cri, sig)
    assert openssl_req_verify(tmp_path, der, "DER")
    assert check_board_csr(der, UID) == info.public_key
    assert x509.load_der_x509_csr(der).subject == board_subject(UID)


def test_csr_with_allowed_extensions_is_accepted_but_not_copied(chain: Chain) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ku = x509.KeyUsage(True, True, False, False, False, False, False, False, False)  # + nonRepudiation
    csr = build_csr(key, board_subject(UID), [ku, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])
    cert = issue_board_certificate_from_csr(chain.ica, csr, UID)
    issued_ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert issued_ku.digital_signature and not issued_ku.content_commitment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    path = chain.write("board.pem", cert)
    res = openssl("verify", "-CAfile", chain.root_pem, "-untrusted", chain.ica_pem, path)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    "ext",
    [
        x509.SubjectAlternativeName([x509.DNSName("evil.example")]),
        x509.BasicConstraints(ca=True, path_length=None),
        x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None),
    ],
)
def test_disallowed_extension_refused(ext: x509.ExtensionType) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = build_csr(key, board_subject(UID), [ext])
    with pytest.raises(CsrExtensionError, match=ext.oid.dotted_string):
        check_board_csr(csr, UID)


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP256K1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda: ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["p384", "secp256k1", "rsa2048", "ed25519"],
)
def test_wrong_key_type_refused(make_key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = make_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(board_subject(UID))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    assert openssl_req_verify(tmp_path, pem(csr))  # well-formed and self-consistent...
    with pytest.raises(CsrKeyTypeError, match="P-256") as err:
        check_board_csr(csr, UID)  # ...but refused by policy
    assert "\n" not in str(err.value)


def test_bad_signature_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = build_board_csr(key, UID).public_bytes(serialization.Encoding.DER)
    cri = board_csr_info(UID, key.public_key())
    other = ec.generate_private_key(ec.SECP256R1())
    forged = assemble_csr(cri, other.sign(cri, ec.ECDSA(hashes.SHA256())))
    assert not openssl_req_verify(tmp_path, forged, "DER")
    with pytest.raises(CsrSignatureError, match="proof of possession"):
        check_board_csr(forged, UID)
    # A flipped bit in the signed info is also caught.
    tampered = bytearray(der)
    tampered[der.index(UID.hex().upper().encode())] ^= 0x01
    with pytest.raises(CsrError):
        check_board_csr(bytes(tampered), UID)


def test_subject_uid_policy() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CsrSubjectError, match="not the registered"):
        check_board_csr(build_board_csr(key, UID), bytes(12))
    no_uid = build_csr(key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "board")]))
    with pytest.raises(CsrSubjectError, match="no board UID"):
        check_board_csr(no_uid, UID)


def test_malformed_csr_refused() -> None:
    for data in (
        b"",
        b"not a csr",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ):
        with pytest.raises(CsrMalformedError):
            load_csr(data)
    with pytest.raises(CsrMalformedError):
        check_board_csr(b"\x30\x03\x02\x01\x00", UID)
    with pytest.raises(CsrMalformedError, match="bytes"):
        load_csr(b"\x30" * 9000)


def test_pem_string_accepted() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    text = pem(build_board_csr(key, UID)).decode()
    assert check_board_csr(text, UID) == key.public_key()
