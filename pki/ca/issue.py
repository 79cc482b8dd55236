"""Certificate issuance: build the TBS from a profile, lint it, have the HSM sign it, lint again.

Why this order (as in boulder's ceremony tool): a certificate is linted on a throwaway-key copy
before the real key signs anything, and again after; a lint ERROR stops issuance, so a bad
profile can never produce a certificate signed by the real CA key. The real signature is
checked against the issuer's public key before the certificate is returned.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.ca import profiles
from pki.ca.lint import require_clean_certificate
from pki.ca.profiles import CertProfile, Role
from pki.ca.signing import assemble_signed, sign_tbs, throwaway_signing_key
from pki.errors import CaError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pki.hsm.backend import KeyBackend

#: Clock-skew allowance: notBefore is set this far in the past.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Issuer:
    """A CA that can sign: its key (by label, in ``backend``) and its certificate."""

    backend: KeyBackend
    key_label: str
    certificate: x509.Certificate
    #: Where relying parties find this CA's CRL (CRL distribution point) and its certificate
    #: (AIA caIssuers); put into every certificate it issues when set.
    crl_url: str | None = None
    issuer_url: str | None = None

    def check(self) -> Issuer:
        """Verify the HSM key matches the certificate and that it is a CA; return self."""
        if self.backend.public_key(self.key_label) != self.certificate.public_key():
            raise CaError(f"key {self.key_label!r} does not match the issuer certificate")
        try:
            bc = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            raise CaError("issuer certificate has no basicConstraints") from None
        if not bc.ca:
            raise CaError("issuer certificate is not a CA")
        return self


def random_serial() -> int:
    """A positive 151-bit serial: 150 random bits below a set top bit (19 DER bytes, < 20)."""
    return secrets.randbits(150) | (1 << 150)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _check_p256(public_key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise CaError("subject key must be an EC P-256 public key")
    return public_key


def _build(
    *,
    profile: CertProfile,
    subject: x509.Name,
    issuer_name: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_public_key: ec.EllipticCurvePublicKey,
    san: Sequence[x509.GeneralName],
    not_before: dt.datetime,
    not_after: dt.datetime,
    serial: int,
    crl_url: str | None = None,
    issuer_url: str | None = None,
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length if profile.ca else None),
            critical=True,
        )
        .add_extension(profile.key_usage_extension(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    # AKI on every certificate, the self-signed root included (pkilint's RFC 5280 profile asks for it).
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
    )
    if profile.extended_key_usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False
        )
    if crl_url:
        dp = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([dp]), critical=False)
    if issuer_url:
        aia = x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(issuer_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([aia]), critical=False)
    if san:
        # RFC 5280 4.2.1.6: critical when the subject is empty.
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=len(subject) == 0)
    return builder


def _check_may_issue(issuer: x509.Certificate, profile: CertProfile) -> None:
    """The issuer must be a CA with keyCertSign, and its pathLen must leave room for a sub-CA."""
    try:
        bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CaError("issuer certificate lacks basicConstraints or keyUsage") from None
    if not bc.ca or not ku.key_cert_sign:
        raise CaError("issuer certificate is not a CA allowed to sign certificates")
    if profile.ca and bc.path_length is not None and bc.path_length < 1:
        raise CaError(f"issuer pathLen {bc.path_length} forbids issuing a {profile.name} certificate")


def issue_certificate(
    *,
    backend: KeyBackend,
    key_label: str,
    issuer_certificate: x509.Certificate | None,
    profile: CertProfile,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    san: Sequence[x509.GeneralName] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    serial: int | None = None,
    crl_url: str | None = None,
    issuer_url: str | None = None,
    lint_log: list[tuple[str, str]] | None = None,
) -> x509.Certificate:
    """Issue one certificate of ``profile``, signed by HSM key ``key_label``.

    ``crl_url``/``issuer_url``: the issuer's CRL distribution point and AIA caIssuers URL.
    ``lint_log`` receives every non-error lint finding as ``("before"|"after", finding)``: the
    throwaway-key copy's and the signed certificate's (the ceremony transcript records both).

    ``issuer_certificate`` None means self-signed (then ``public_key`` must be the HSM key's
    own public key). Validity defaults to now-5min .. profile validity (clamped to the issuer's
    notAfter, except for the 802.1AR board profile). Raises ``CaError``/``LintError``.
    """
    public_key = _check_p256(public_key)
    if profile.require_san and not san:
        raise CaError(f"profile {profile.name} requires a subjectAltName")
    if len(subject) == 0 and not san:
        raise CaError("certificate needs a subject or a subjectAltName")
    signer_public = _check_p256(backend.public_key(key_label))
    if issuer_certificate is None:
        if signer_public != public_key:
            raise CaError("self-signed certificate: public key is not the signing key's")
        issuer_name = subject
    else:
        if issuer_certificate.public_key() != signer_public:
            raise CaError(f"key {key_label!r} does not match the issuer certificate")
        _check_may_issue(issuer_certificate, profile)
        issuer_name = issuer_certificate.subject
    start = not_before or (_now() - BACKDATE)
    if not_after is None:
        end = profiles.NO_WELL_DEFINED_EXPIRY if profile.validity is None else start + profile.validity
        if issuer_certificate is not None and profile.validity is not None:
            end = min(end, issuer_certificate.not_valid_after_utc)
    else:
        end = not_after
    if end <= start:
        raise CaError("notAfter must be later than notBefore")
    builder = _build(
        profile=profile,
        subject=subject,
        issuer_name=issuer_name,
        public_key=public_key,
        issuer_public_key=signer_public,
        san=san,
        not_before=start,
        not_after=end,
        serial=serial if serial is not None else random_serial(),
        crl_url=crl_url,
        issuer_url=issuer_url,
    )
    # 1. throwaway-key copy: same TBS, linted before the real key signs anything.
    draft = builder.sign(throwaway_signing_key(), hashes.SHA256())
    before = require_clean_certificate(draft, f"{profile.name} certificate (pre-signing copy)")
    # 2. the real signature, made in the HSM over SHA-256(TBS).
    tbs = draft.tbs_certificate_bytes
    cert = x509.load_der_x509_certificate(assemble_signed(tbs, sign_tbs(backend, key_label, tbs)))
    try:
        signer_public.verify(cert.signature, tbs, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CaError(f"HSM signature by {key_label!r} does not verify") from None
    after = require_clean_certificate(cert, f"{profile.name} certificate")
    if lint_log is not None:
        lint_log.extend(("before", str(f)) for f in before)
        lint_log.extend(("after", str(f)) for f in after)
    log.info(
        "issued %s certificate serial %x for %s (signed by HSM key %r)",
        profile.name,
        cert.serial_number,
        cert.subject.rfc4514_string(),
        key_label,
    )
    return cert


# --- one function per profile -----------------------------------------------------------------


def create_root_certificate(
    backend: KeyBackend,
    key_label: str,
    subject: x509.Name,
    *,
    validity: dt.timedelta | None = None,
    not_before: dt.datetime | None = None,
    lint_log: list[tuple[str, str]] | None = None,
) -> x509.Certificate:
    """Self-signed RootCA certificate (CA, pathLen 1) for HSM key ``key_label``."""
    start = not_before or (_now() - BACKDATE)
    return issue_certificate(
        backend=backend,
        key_label=key_label,
        issuer_certificate=None,
        profile=profiles.ROOT_CA,
        subject=subject,
        public_key=backend.public_key(key_label),
        not_before=start,
        not_after=start + (validity or profiles.ROOT_CA.validity or dt.timedelta(days=9125)),
        lint_log=lint_log,
    )


def issue_ica_certificate(
    root: Issuer,
    ica_public_key: ec.EllipticCurvePublicKey,
    subject: x509.Name,
    *,
    validity: dt.timedelta | None = None,
    not_before: dt.datetime | None = None,
    lint_log: list[tuple[str, str]] | None = None,
) -> x509.Certificate:
    """ICA certificate (CA, pathLen 0) signed by the RootCA key; carries the root's CRL DP/AIA."""
    start = not_before or (_now() - BACKDATE)
    end = None if validity is None else min(start + validity, root.certificate.not_valid_after_utc)
    return issue_certificate(
        backend=root.backend,
        key_label=root.key_label,
        issuer_certificate=root.certificate,
        profile=profiles.ICA,
        subject=subject,
        public_key=ica_public_key,
        not_before=start,
        not_after=end,
        crl_url=root.crl_url,
        issuer_url=root.issuer_url,
        lint_log=lint_log,
    )


def issue_board_certificate(
    ica: Issuer,
    uid: bytes,
    public_key: ec.EllipticCurvePublicKey,
    *,
    organization: str | None = None,
    serial: int | None = None,
) -> x509.Certificate:
    """Board identity certificate (802.1AR DevID) for the 12-byte ``uid``'s identity key.

    Call ``pki.ca.csr.check_board_csr`` first when the key arrives in a CSR."""
    return issue_certificate(
        backend=ica.backend,
        key_label=ica.key_label,
        issuer_certificate=ica.certificate,
        profile=profiles.BOARD_IDENTITY,
        subject=profiles.board_subject(uid, organization),
        public_key=public_key,
        serial=serial,
        crl_url=ica.crl_url,
        issuer_url=ica.issuer_url,
    )


def issue_server_certificate(
    ica: Issuer,
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    validity: dt.timedelta | None = None,
) -> x509.Certificate:
    """TLS server certificate for the OEM service (serverAuth; SAN from DNS names and IPs)."""
    san: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    try:
        san += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    except ValueError as exc:
        raise CaError(f"bad IP address for subjectAltName: {exc}") from None
    start = _now() - BACKDATE
    return issue_certificate(
        backend=ica.backend,
        key_label=ica.key_label,
        issuer_certificate=ica.certificate,
        profile=profiles.SERVICE_TLS_SERVER,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
        public_key=public_key,
        san=san,
        not_before=start,
        not_after=None if validity is None else min(start + validity, ica.certificate.not_valid_after_utc),
        crl_url=ica.crl_url,
        issuer_url=ica.issuer_url,
    )


def issue_operator_certificate(
    ica: Issuer,
    public_key: ec.EllipticCurvePublicKey,
    *,
    name: str,
    role: Role,
    organization: str | None = None,
    validity: dt.timedelta | None = None,
) -> x509.Certificate:
    """Operator client certificate for mutual TLS (clientAuth; role in subject OU)."""
    start = _now() - BACKDATE
    return issue_certificate(
        backend=ica.backend,
        key_label=ica.key_label,
        issuer_certificate=ica.certificate,
        profile=profiles.OPERATOR_CLIENT,
        subject=profiles.operator_subject(name, role, organization),
        public_key=public_key,
        not_before=start,
        not_after=None if validity is None else min(start + validity, ica.certificate.not_valid_after_utc),
        crl_url=ica.crl_url,
        issuer_url=ica.issuer_url,
    )
