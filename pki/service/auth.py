"""Who is calling: the mutual-TLS client certificate, and the role (operator/admin) it carries.

The TLS layer has already checked the chain (CERT_REQUIRED against RootCA+ICA) before a request
reaches the app; here we read the verified leaf that ``server.ClientCertH11Protocol`` put into
the request state, require the clientAuth EKU and a role in the subject OU (``pki.ca`` operator
profile), and let routes demand a role. Board identity certificates share the CA but carry no
role, so a board key cannot call the API.

Revocation is checked before any of this, on every request, by
``pki.service.client_revocation.ClientRevocationMiddleware`` (the TLS layer cannot see
revocations that ``nusec pki revoke`` writes to the database while the service runs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.types import Scope

from pki.ca import Role, role_from_certificate
from pki.service.problems import Problem

#: Key under which the server protocol stores the peer certificate (DER) in the ASGI scope state.
CLIENT_CERT_STATE_KEY = "nusec_client_cert_der"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a name for the audit log, a role, and a stable certificate id."""

    name: str
    role: Role
    cert_sha256: str


INSECURE_PRINCIPAL = Principal("insecure-dev", Role.ADMIN, "insecure-dev")


def client_certificate_der(scope: Scope) -> bytes | None:
    """The TLS-verified client certificate (DER) of this request, or None (plain HTTP)."""
    state = scope.get("state") or {}
    der = state.get(CLIENT_CERT_STATE_KEY)
    return der if isinstance(der, bytes) else None


def certificate_name(cert: x509.Certificate) -> str:
    """The caller's name for the audit log: the subject CN (else the whole subject)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def client_id(scope: Scope) -> str:
    """Stable caller id for idempotency scoping: SHA-256 of the client certificate."""
    der = client_certificate_der(scope)
    return hashlib.sha256(der).hexdigest() if der else "anonymous"


def principal_from_scope(scope: Scope, insecure_dev: bool) -> Principal:
    der = client_certificate_der(scope)
    if der is None:
        if insecure_dev:
            return INSECURE_PRINCIPAL
        raise Problem(401, "no-client-certificate", "Client certificate required", "no client certificate")
    cert = x509.load_der_x509_certificate(der)
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise Problem(403, "not-a-client-certificate", "Forbidden", "certificate lacks the clientAuth usage")
    role = role_from_certificate(cert)
    if role is None:
        raise Problem(403, "no-role", "Forbidden", "client certificate carries no operator role (subject OU)")
    return Principal(certificate_name(cert), role, hashlib.sha256(der).hexdigest())


def check_role(who: Principal, roles: tuple[Role, ...]) -> None:
    """Raise a 403 problem unless ``who`` has one of ``roles``."""
    if who.role not in roles:
        needed = ", ".join(r.value for r in roles)
        raise Problem(
            403,
            "role-forbidden",
            "Forbidden",
            f"role {who.role.value!r} may not call this endpoint (needs {needed})",
        )
