"""Certificate profiles as data: what each kind of certificate NuSec issues must look like.

Why data: one reviewed table says which extensions each certificate carries, so the CA code is
one generic builder and the linter can be run on every profile the same way. Extensions in an
issued certificate come only from here (never copied from a CSR).

Profiles:

- ``ROOT_CA``: self-signed, CA, pathLen 1, keyCertSign + cRLSign.
- ``ICA``: CA, pathLen 0, keyCertSign + cRLSign.
- ``BOARD_IDENTITY``: Nu-Link3 board identity (IEEE 802.1AR DevID): subject serialNumber and CN
  carry the board UID in hex, keyUsage digitalSignature, EKU clientAuth, notAfter
  99991231235959Z (GeneralizedTime), the 802.1AR value for "no well-defined expiration".
- ``SERVICE_TLS_SERVER``: the OEM service's HTTPS certificate: serverAuth, SAN required.
- ``OPERATOR_CLIENT``: mutual-TLS client certificate of a desktop operator: clientAuth, role in
  subject OU (``operator`` or ``admin``).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.errors import CaError

#: IEEE 802.1AR: a DevID with no well-defined expiration uses notAfter 99991231235959Z.
NO_WELL_DEFINED_EXPIRY = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)

#: Length of a board UID in bytes (three 32-bit words read with FMC READ_UID).
BOARD_UID_LEN = 12


class Role(enum.Enum):
    """Operator roles carried in the subject OU of operator client certificates."""

    OPERATOR = "operator"
    ADMIN = "admin"


class KeyUsageBit(enum.Enum):
    """The keyUsage bits NuSec profiles use (names as in ``cryptography.x509.KeyUsage``)."""

    DIGITAL_SIGNATURE = "digital_signature"
    KEY_CERT_SIGN = "key_cert_sign"
    CRL_SIGN = "crl_sign"


@dataclass(frozen=True)
class CertProfile:
    """One kind of certificate.

    ``validity`` None means the 802.1AR "no well-defined expiration" notAfter. ``path_length``
    is only meaningful when ``ca``. ``require_san`` refuses issuance without subjectAltName.
    """

    name: str
    ca: bool
    path_length: int | None
    key_usage: frozenset[KeyUsageBit]
    extended_key_usage: tuple[x509.ObjectIdentifier, ...]
    validity: dt.timedelta | None
    require_san: bool = False

    def key_usage_extension(self) -> x509.KeyUsage:
        """The keyUsage extension value of this profile (always marked critical)."""
        bits = self.key_usage
        return x509.KeyUsage(
            digital_signature=KeyUsageBit.DIGITAL_SIGNATURE in bits,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=KeyUsageBit.KEY_CERT_SIGN in bits,
            crl_sign=KeyUsageBit.CRL_SIGN in bits,
            encipher_only=False,
            decipher_only=False,
        )


_CA_BITS = frozenset({KeyUsageBit.KEY_CERT_SIGN, KeyUsageBit.CRL_SIGN})
_SIG_BITS = frozenset({KeyUsageBit.DIGITAL_SIGNATURE})

ROOT_CA = CertProfile("root-ca", True, 1, _CA_BITS, (), dt.timedelta(days=25 * 365))
ICA = CertProfile("ica", True, 0, _CA_BITS, (), dt.timedelta(days=10 * 365))
BOARD_IDENTITY = CertProfile(
    "board-identity", False, None, _SIG_BITS, (ExtendedKeyUsageOID.CLIENT_AUTH,), None
)
SERVICE_TLS_SERVER = CertProfile(
    "service-tls-server",
    False,
    None,
    _SIG_BITS,
    (ExtendedKeyUsageOID.SERVER_AUTH,),
    dt.timedelta(days=397),
    require_san=True,
)
OPERATOR_CLIENT = CertProfile(
    "operator-client", False, None, _SIG_BITS, (ExtendedKeyUsageOID.CLIENT_AUTH,), dt.timedelta(days=365)
)

#: Every profile by name (the store records ``profile.name``).
PROFILES: dict[str, CertProfile] = {
    p.name: p for p in (ROOT_CA, ICA, BOARD_IDENTITY, SERVICE_TLS_SERVER, OPERATOR_CLIENT)
}


def check_uid(uid: bytes) -> bytes:
    """Return ``uid`` if it is a 12-byte board UID, else raise ``CaError``."""
    if not isinstance(uid, bytes | bytearray) or len(uid) != BOARD_UID_LEN:
        raise CaError(f"board UID must be {BOARD_UID_LEN} bytes")
    return bytes(uid)


def uid_hex(uid: bytes) -> str:
    """Canonical text form of a board UID: 24 upper-case hex digits."""
    return check_uid(uid).hex().upper()


def board_subject(uid: bytes, organization: str | None = None) -> x509.Name:
    """Subject of a board identity certificate: CN and serialNumber are the UID in hex."""
    text = uid_hex(uid)
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, text))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, text))
    return x509.Name(attrs)


def operator_subject(name: str, role: Role, organization: str | None = None) -> x509.Name:
    """Subject of an operator client certificate: CN = operator name, OU = role."""
    if not name or len(name) > 64:
        raise CaError("operator name must be 1..64 characters")
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, name))
    return x509.Name(attrs)


def uid_from_name(name: x509.Name) -> bytes | None:
    """The board UID carried in a subject (serialNumber, else CN), or None if absent/malformed."""
    for oid in (NameOID.SERIAL_NUMBER, NameOID.COMMON_NAME):
        for attr in name.get_attributes_for_oid(oid):
            value = attr.value if isinstance(attr.value, str) else ""
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                continue
            if len(raw) == BOARD_UID_LEN:
                return raw
    return None


def role_from_certificate(cert: x509.Certificate) -> Role | None:
    """The operator role (subject OU) of a client certificate, or None if it carries none."""
    for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME):
        try:
            return Role(attr.value)
        except ValueError:
            continue
    return None
