"""pkcs11: URIs and PIN sources, signature encodings, and the pkilint wrapper's verdicts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from pki.ca.lint import lint_certificate, require_clean_certificate
from pki.errors import LintError, PinSourceError, Pkcs11UriError, PkiError
from pki.hsm.uri import DEFAULT_MODULE_PATH, Pkcs11Uri, parse_pkcs11_uri, resolve_pin, resolve_so_pin
from pki.signature import der_to_raw, raw_to_der

# --- URIs ------------------------------------------------------------------------------------


def test_parse_rfc7512_examples() -> None:
    u = parse_pkcs11_uri(
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;"
        "object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91?module-path=/mnt/libmypkcs11.so.1"
    )
    assert u.token == "The Software PKCS#11 Softtoken"
    assert u.manufacturer == "Snake Oil, Inc."
    assert u.object == "my-certificate" and u.type == "cert"
    assert u.id == bytes.fromhex("69953e5cf4bdec91")
    assert u.module() == "/mnt/libmypkcs11.so.1"
    assert parse_pkcs11_uri(str(u)) == u


def test_module_default_and_env() -> None:
    assert Pkcs11Uri(token="t").module({}) == DEFAULT_MODULE_PATH
    assert Pkcs11Uri(token="t").module({"NUSEC_PKCS11_MODULE": "/x.so"}) == "/x.so"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pkcs12:token=a", "must start"),
        ("pkcs11:token=a?pin-value=1234", "pin-value"),
        ("pkcs11:token=a;token=b", "repeats"),
        ("pkcs11:bogus=1", "unknown"),
        ("pkcs11:slot-id=3", "not supported"),
        ("pkcs11:type=weird", "type"),
        ("pkcs11:token", "no value"),
    ],
)
def test_bad_uris(text: str, message: str) -> None:
    with pytest.raises(Pkcs11UriError, match=message) as err:
        parse_pkcs11_uri(text)
    assert "1234" not in str(err.value)


def test_pin_sources(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("s3cret-from-file\n")
    uri = parse_pkcs11_uri(f"pkcs11:token=t?pin-source=file:{pin_file}")
    assert resolve_pin(uri, {}) == "s3cret-from-file"
    assert resolve_pin(parse_pkcs11_uri(f"pkcs11:token=t?pin-source={pin_file}"), {}) == "s3cret-from-file"
    assert resolve_pin(Pkcs11Uri(token="t"), {"NUSEC_HSM_PIN": "from-env"}) == "from-env"
    assert resolve_pin(None, {"NUSEC_HSM_PIN_FILE": str(pin_file)}) == "s3cret-from-file"
    with pytest.raises(PinSourceError, match="NUSEC_HSM_PIN"):
        resolve_pin(Pkcs11Uri(token="t"), {})
    with pytest.raises(PinSourceError, match="cannot read"):
        resolve_pin(parse_pkcs11_uri("pkcs11:token=t?pin-source=file:/nonexistent/pin"), {})
    (tmp_path / "empty").write_text("")
    with pytest.raises(PinSourceError, match="empty"):
        resolve_pin(None, {"NUSEC_HSM_PIN_FILE": str(tmp_path / "empty")})
    assert resolve_so_pin({}) is None
    assert resolve_so_pin({"NUSEC_HSM_SO_PIN": "so"}) == "so"


# --- signatures ------------------------------------------------------------------------------


@given(st.integers(1, 2**256 - 1), st.integers(1, 2**256 - 1))
def test_raw_der_round_trip(r: int, s: int) -> None:
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = raw_to_der(raw)
    assert decode_dss_signature(der) == (r, s)
    assert der_to_raw(der) == raw


def test_signature_errors() -> None:
    with pytest.raises(PkiError, match="raw P-256 signature must be 64 bytes, got 63"):
        raw_to_der(b"\x00" * 63)
    with pytest.raises(PkiError, match="signature is not a DER ECDSA-Sig-Value"):
        der_to_raw(b"\x30\x00garbage")


def test_der_to_raw_of_cryptography_signature() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(b"m", ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(raw_to_der(der_to_raw(der)), b"m", ec.ECDSA(hashes.SHA256()))


# --- lint ------------------------------------------------------------------------------------


def test_lint_flags_a_bad_certificate() -> None:
    """A CA certificate without keyUsage/SKI/AKI, made directly with cryptography, is an ERROR."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    findings = lint_certificate(cert)
    assert any(f.severity == "ERROR" for f in findings)
    with pytest.raises(LintError) as err:
        require_clean_certificate(cert)
    assert err.value.findings and "\n" not in str(err.value)
