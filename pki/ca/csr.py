"""CSR policy for board identity certificates, and helpers to build CSRs.

Why strict: the CSR crosses an untrusted desktop. Its proof-of-possession signature must
verify, its key must be P-256, its subject must carry the UID the service registered, and any
requested extension not on the allow-list is refused outright (extensions of an issued
certificate come from the profile only, never from the request).

The seed flow builds the CSR in two halves: the desktop makes the CertificationRequestInfo
(``board_csr_info``), the board signs it with its KeyStore key, and the desktop joins them
(``assemble_csr``). ``build_csr`` does the same in one step for a key ``cryptography`` holds
(tests, operator and server keys).
"""

from __future__ import annotations

from collections.abc import Sequence

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from pki.ca.profiles import board_subject, check_uid, uid_from_name
from pki.ca.signing import assemble_signed
from pki.errors import (
    CsrExtensionError,
    CsrKeyTypeError,
    CsrMalformedError,
    CsrSignatureError,
    CsrSubjectError,
)

#: Extensions a board CSR may request. They are checked for presence only and never copied:
#: the issued certificate's keyUsage/EKU/SKI come from the profile.
ALLOWED_CSR_EXTENSIONS: frozenset[x509.ObjectIdentifier] = frozenset(
    {ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE, ExtensionOID.SUBJECT_KEY_IDENTIFIER}
)

#: Largest CSR accepted (bytes); a board CSR is ~300 bytes.
MAX_CSR_BYTES = 8192


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER PKCS#10 request; ``CsrMalformedError`` otherwise."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if not raw or len(raw) > MAX_CSR_BYTES:
        raise CsrMalformedError(f"CSR must be 1..{MAX_CSR_BYTES} bytes")
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(raw)
        else:
            csr = x509.load_der_x509_csr(raw)
    except ValueError:
        raise CsrMalformedError("CSR is not a valid PEM/DER PKCS#10 request") from None
    try:  # the subject is decoded lazily: a string attribute that is not valid UTF-8 fails here
        csr.subject.rfc4514_string()
    except ValueError:
        raise CsrMalformedError("CSR subject does not decode (a string attribute is malformed)") from None
    return csr


def check_board_csr(
    csr: x509.CertificateSigningRequest | bytes | str, expected_uid: bytes
) -> ec.EllipticCurvePublicKey:
    """Apply the board CSR policy; return the (validated) board public key.

    Raises ``CsrMalformedError``, ``CsrKeyTypeError``, ``CsrSignatureError``,
    ``CsrSubjectError`` or ``CsrExtensionError``.
    """
    expected = check_uid(expected_uid)
    req = csr if isinstance(csr, x509.CertificateSigningRequest) else load_csr(csr)
    try:
        key = req.public_key()
    except (ValueError, TypeError):
        raise CsrKeyTypeError("CSR public key is not supported (must be EC P-256)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CsrKeyTypeError("CSR key must be EC P-256")
    if not req.is_signature_valid:
        raise CsrSignatureError("CSR signature (proof of possession) does not verify")
    if not isinstance(req.signature_hash_algorithm, hashes.SHA256):
        raise CsrSignatureError("CSR must be signed with ecdsa-with-SHA256")
    uid = uid_from_name(req.subject)
    if uid is None:
        raise CsrSubjectError("CSR subject carries no board UID (serialNumber/CN as 24 hex digits)")
    if uid != expected:
        raise CsrSubjectError(
            f"CSR subject UID {uid.hex().upper()} is not the registered {expected.hex().upper()}"
        )
    try:
        extensions = req.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise CsrExtensionError("CSR extension request is malformed") from None
    for ext in extensions:
        if ext.oid not in ALLOWED_CSR_EXTENSIONS:
            raise CsrExtensionError(f"CSR requests extension {ext.oid.dotted_string}, which is not allowed")
    return key


def build_csr(
    private_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.CertificateSigningRequest:
    """A CSR for a key ``cryptography`` holds, signed ecdsa-with-SHA256 (for tests and tools)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(private_key, hashes.SHA256())


def build_board_csr(private_key: ec.EllipticCurvePrivateKey, uid: bytes) -> x509.CertificateSigningRequest:
    """A board CSR (subject from ``board_subject(uid)``) for a key ``cryptography`` holds."""
    return build_csr(private_key, board_subject(uid))


def board_csr_info(uid: bytes, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """DER CertificationRequestInfo for a board: what the board signs (SHA-256, ECDSA)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    subject_der = board_subject(uid).public_bytes()
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_csr.Name.load(subject_der),
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki),
            "attributes": [],
        }
    )
    return bytes(info.dump())


def assemble_csr(info_der: bytes, signature_der: bytes) -> bytes:
    """DER CSR from a CertificationRequestInfo and the board's DER ECDSA signature over it."""
    return assemble_signed(info_der, signature_der)
