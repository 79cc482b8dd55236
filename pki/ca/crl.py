"""CRL issuance for revoked board (and operator) certificates, signed in the HSM and linted.

Why: a board whose identity key is compromised (or a retired operator) must stop being trusted
by mutual TLS and by the service; relying parties fetch the ICA's CRL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pki.ca.issue import Issuer
from pki.ca.lint import require_clean_crl
from pki.ca.signing import assemble_signed, sign_tbs, throwaway_signing_key
from pki.errors import CaError

#: Default time until the next CRL is due.
DEFAULT_NEXT_UPDATE = dt.timedelta(days=7)


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate: serial, when, and (optionally) why."""

    serial: int
    revoked_at: dt.datetime
    reason: x509.ReasonFlags | None = None


def issue_crl(
    issuer: Issuer,
    revoked: Iterable[RevokedEntry],
    *,
    crl_number: int,
    this_update: dt.datetime | None = None,
    next_update: dt.timedelta = DEFAULT_NEXT_UPDATE,
) -> x509.CertificateRevocationList:
    """A CRL (v2, with CRL number and AKI) listing ``revoked``, signed by the issuer's HSM key.

    ``crl_number`` must grow with each CRL (the store's ``next_crl_number`` gives one)."""
    if crl_number < 0 or crl_number >= 1 << 159:
        raise CaError("CRL number must be a non-negative integer below 2^159")
    now = (this_update or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    issuer_public = issuer.certificate.public_key()
    if not isinstance(issuer_public, ec.EllipticCurvePublicKey):
        raise CaError("issuer certificate key is not EC")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(now)
        .next_update(now + next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False)
    )
    seen: set[int] = set()
    for entry in revoked:
        if entry.serial in seen:
            continue
        seen.add(entry.serial)
        rb = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at.astimezone(dt.UTC).replace(microsecond=0))
        )
        if entry.reason is not None and entry.reason != x509.ReasonFlags.unspecified:
            rb = rb.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(rb.build())
    draft = builder.sign(throwaway_signing_key(), hashes.SHA256())
    require_clean_crl(draft)
    tbs = draft.tbs_certlist_bytes
    crl_obj = x509.load_der_x509_crl(assemble_signed(tbs, sign_tbs(issuer.backend, issuer.key_label, tbs)))
    try:
        issuer_public.verify(crl_obj.signature, tbs, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CaError(f"HSM signature by {issuer.key_label!r} on the CRL does not verify") from None
    require_clean_crl(crl_obj)
    return crl_obj
