"""CA issuance on SoftHSM2, checked by oracles we did not write: openssl verify, pkilint's CLI, asn1crypto."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.ca import (
    BOARD_IDENTITY,
    ICA,
    Issuer,
    Role,
    issue_board_certificate,
    issue_certificate,
    issue_operator_certificate,
    issue_server_certificate,
    role_from_certificate,
    uid_from_name,
)
from pki.errors import CaError, LintError
from pki.hsm.pkcs11 import Pkcs11Backend
from tests.pki.conftest import Chain, name, openssl

UID = bytes.fromhex("0123456789abcdef01234567")
LINT = Path(sys.executable).parent / "lint_pkix_cert"


def p256_public() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def pkilint_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "lint", "-s", "ERROR", str(path)], capture_output=True, text=True, timeout=120
    )


def test_board_certificate_verifies_with_openssl(chain: Chain) -> None:
    board = issue_board_certificate(chain.ica, UID, p256_public())
    board_pem = chain.write("board.pem", board)
    res = openssl("verify", "-CAfile", chain.root_pem, "-untrusted", chain.ica_pem, board_pem)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{board_pem}: OK" in res.stdout
    # clientAuth purpose (EKU) is accepted too.
    res = openssl(
        "verify", "-purpose", "sslclient", "-CAfile", chain.root_pem, "-untrusted", chain.ica_pem, board_pem
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_openssl_rejects_board_certificate_without_the_ica(chain: Chain) -> None:
    board_pem = chain.write("board.pem", issue_board_certificate(chain.ica, UID, p256_public()))
    res = openssl("verify", "-CAfile", chain.root_pem, board_pem)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "unable to get local issuer certificate" in res.stdout + res.stderr


def test_every_profile_passes_pkilint_cli(chain: Chain) -> None:
    certs = {
        "root": chain.root.certificate,
        "ica": chain.ica.certificate,
        "board": issue_board_certificate(chain.ica, UID, p256_public(), organization="NuSec Test OEM"),
        "server": issue_server_certificate(
            chain.ica,
            p256_public(),
            common_name="oem.example",
            dns_names=["oem.example"],
            ip_addresses=["127.0.0.1"],
        ),
        "operator": issue_operator_certificate(chain.ica, p256_public(), name="alice", role=Role.OPERATOR),
        "admin": issue_operator_certificate(chain.ica, p256_public(), name="bob", role=Role.ADMIN),
    }
    for label, cert in certs.items():
        path = chain.write(f"{label}.pem", cert)
        res = pkilint_cli(path)
        assert res.returncode == 0, f"{label}: {res.stdout}{res.stderr}"


def test_board_certificate_fields(chain: Chain) -> None:
    key = p256_public()
    cert = issue_board_certificate(chain.ica, UID, key)
    assert uid_from_name(cert.subject) == UID
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == UID.hex().upper()
    assert cert.public_key() == key
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ica_ski = chain.ica.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ica_ski.digest
    # 802.1AR: notAfter 99991231235959Z, encoded as GeneralizedTime (read by asn1crypto, not by us).
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    not_after = parsed["tbs_certificate"]["validity"]["not_after"]
    assert not_after.name == "general_time"
    assert not_after.chosen.contents == b"99991231235959Z"
    # Positive serial of at least 128 bits.
    assert cert.serial_number > 0 and cert.serial_number.bit_length() >= 128


def test_serials_are_unique_and_large(chain: Chain) -> None:
    serials = {issue_board_certificate(chain.ica, UID, p256_public()).serial_number for _ in range(5)}
    assert len(serials) == 5
    assert all(s.bit_length() >= 128 for s in serials)


def test_ca_profiles(chain: Chain) -> None:
    root_bc = chain.root.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    ica_bc = chain.ica.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (root_bc.ca, root_bc.path_length) == (True, 1)
    assert (ica_bc.ca, ica_bc.path_length) == (True, 0)
    assert chain.root.certificate.issuer == chain.root.certificate.subject
    ku = chain.ica.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    # openssl checks the self-signature and that the ICA chains to the root.
    res = openssl("verify", "-CAfile", chain.root_pem, chain.ica_pem)
    assert res.returncode == 0, res.stdout + res.stderr


def test_server_and_operator_certificates(chain: Chain) -> None:
    server = issue_server_certificate(
        chain.ica,
        p256_public(),
        common_name="localhost",
        dns_names=["oem.example"],
        ip_addresses=["127.0.0.1"],
    )
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["oem.example"]
    path = chain.write("server.pem", server)
    res = openssl(
        "verify", "-purpose", "sslserver", "-CAfile", chain.root_pem, "-untrusted", chain.ica_pem, path
    )
    assert res.returncode == 0, res.stdout + res.stderr
    op = issue_operator_certificate(chain.ica, p256_public(), name="carol", role=Role.ADMIN)
    assert role_from_certificate(op) is Role.ADMIN
    assert role_from_certificate(server) is None
    path = chain.write("op.pem", op)
    res = openssl(
        "verify", "-purpose", "sslclient", "-CAfile", chain.root_pem, "-untrusted", chain.ica_pem, path
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # validity is clamped to the issuer's.
    assert op.not_valid_after_utc <= chain.ica.certificate.not_valid_after_utc


def test_server_certificate_requires_san(chain: Chain) -> None:
    with pytest.raises(CaError, match="subjectAltName"):
        issue_server_certificate(chain.ica, p256_public(), common_name="x")


def test_loopback_server_certificate_uses_an_ip_san(chain: Chain) -> None:
    # "localhost" is not preferred-name syntax for pkilint (no TLD): loopback servers use IP SANs.
    with pytest.raises(LintError, match="invalid_domain_name_syntax"):
        issue_server_certificate(chain.ica, p256_public(), common_name="localhost", dns_names=["localhost"])
    cert = issue_server_certificate(
        chain.ica, p256_public(), common_name="localhost", ip_addresses=["127.0.0.1"]
    )
    path = chain.write("loop.pem", cert)
    res = openssl(
        "verify",
        "-purpose",
        "sslserver",
        "-verify_ip",
        "127.0.0.1",
        "-CAfile",
        chain.root_pem,
        "-untrusted",
        chain.ica_pem,
        path,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_lint_error_stops_issuance_before_the_hsm_signs(chain: Chain, backend: Pkcs11Backend) -> None:
    calls: list[str] = []
    real = backend.sign_digest

    def counting(label: str, digest: bytes) -> bytes:
        calls.append(label)
        return real(label, digest)

    backend.sign_digest = counting  # type: ignore[method-assign]
    bad_san = [x509.DNSName("not a host name!")]
    with pytest.raises(LintError, match="pre-signing copy"):
        issue_certificate(
            backend=backend,
            key_label="ica",
            issuer_certificate=chain.ica.certificate,
            profile=BOARD_IDENTITY,
            subject=name("x"),
            public_key=p256_public(),
            san=bad_san,
        )
    assert calls == []


def test_issuer_must_match_key(chain: Chain, backend: Pkcs11Backend) -> None:
    with pytest.raises(CaError, match="does not match"):
        Issuer(backend, "root", chain.ica.certificate).check()
    with pytest.raises(CaError, match="does not match"):
        issue_certificate(
            backend=backend,
            key_label="root",
            issuer_certificate=chain.ica.certificate,
            profile=ICA,
            subject=name("y"),
            public_key=p256_public(),
        )


def test_non_p256_subject_key_refused(chain: Chain) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(CaError, match="P-256"):
        issue_board_certificate(chain.ica, UID, p384)


def test_bad_uid_refused(chain: Chain) -> None:
    with pytest.raises(CaError, match="12 bytes"):
        issue_board_certificate(chain.ica, b"\x01" * 11, p256_public())


def test_root_validity_and_not_before(backend: Pkcs11Backend) -> None:
    from pki.ca import create_root_certificate
    from pki.hsm.backend import KeyPolicy

    backend.generate_ec_keypair("r2", policy=KeyPolicy.ca_key())
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = create_root_certificate(
        backend, "r2", name("R2"), validity=dt.timedelta(days=30), not_before=start
    )
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == start + dt.timedelta(days=30)


def test_ica_cannot_issue_a_ca_and_a_leaf_cannot_issue(chain: Chain, backend: Pkcs11Backend) -> None:
    with pytest.raises(CaError, match="pathLen 0"):
        issue_certificate(
            backend=backend,
            key_label="ica",
            issuer_certificate=chain.ica.certificate,
            profile=ICA,
            subject=name("sub-ica"),
            public_key=p256_public(),
        )
    info = backend.generate_ec_keypair("leaf")
    leaf = issue_operator_certificate(chain.ica, info.public_key, name="leaf", role=Role.OPERATOR)
    with pytest.raises(CaError, match="not a CA"):
        issue_board_certificate(Issuer(backend, "leaf", leaf), UID, p256_public())


def test_one_signed_assembly_rebuilds_what_cryptography_signs() -> None:
    """``assemble_signed`` (certificates, CRLs and CSRs alike) rebuilds, byte for byte, the
    certificate, CRL and CSR that cryptography signs itself: same tbs, same signature."""
    from cryptography.hazmat.primitives import hashes

    from pki.ca.csr import assemble_csr
    from pki.ca.signing import assemble_signed

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oracle")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    der = serialization.Encoding.DER
    assert assemble_signed(cert.tbs_certificate_bytes, cert.signature) == cert.public_bytes(der)
    assert assemble_signed(crl.tbs_certlist_bytes, crl.signature) == crl.public_bytes(der)
    assert assemble_csr(csr.tbs_certrequest_bytes, csr.signature) == csr.public_bytes(der)
