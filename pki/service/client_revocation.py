"""Refuse revoked client certificates on every request, after TLS has verified the chain.

Why not in the handshake: Python's ``ssl`` only knows CRL files loaded at start-up, while
``nusec pki revoke`` writes revocations into the service's database as it runs. So this ASGI
middleware (outermost: idempotent replays and unknown paths are covered too) looks the verified
leaf up in the CA store (``pki.store.find_revocation``: a unique-index read by serial) and answers
``401 client-certificate-revoked``, audited like any other refusal (bounded and rate-limited per
certificate: ``ServiceContext.audit_refusal``). Only certificates issued by
this service's ICA are looked up (the store is the ICA's record). Answers are cached per
certificate for ``ServiceConfig.client_revocation_ttl`` seconds, so a revocation takes effect
within that time; a "revoked" answer is kept for good, since revocation is permanent.

With ``require_recorded_client_certs`` a certificate the store has no record of (issued without
``--db-url``, or not by the ICA) is refused too (``401 client-certificate-unknown``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.types import ASGIApp, Receive, Scope, Send

from pki import store
from pki.ca import role_from_certificate
from pki.service.auth import certificate_name, client_certificate_der
from pki.service.context import ServiceContext
from pki.service.problems import Problem, problem_response

#: Entries kept before the cache is emptied (a bound against many distinct certificates).
CACHE_MAX_ENTRIES = 4096


@dataclass(frozen=True)
class ClientCertStatus:
    """What the CA store says about one client certificate."""

    revoked_at: str | None  # ISO time of the revocation, None if not revoked
    recorded: bool  # the store holds this very certificate (same serial and fingerprint)


class StatusCache:
    """Per-certificate statuses, reused for ``ttl`` seconds ("revoked" is kept without expiry)."""

    def __init__(
        self, ttl: float, clock: Callable[[], float] = time.monotonic, max_entries: int = CACHE_MAX_ENTRIES
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[ClientCertStatus, float]] = {}

    def get(self, key: str) -> ClientCertStatus | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        status, expires = entry
        if status.revoked_at is None and self.clock() >= expires:
            del self._entries[key]
            return None
        return status

    def put(self, key: str, status: ClientCertStatus) -> None:
        if status.revoked_at is None and self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (status, self.clock() + self.ttl)


def lookup_status(ctx: ServiceContext, cert: x509.Certificate) -> ClientCertStatus:
    """Ask the CA store about ``cert`` (blocking: run it in a worker thread)."""
    if cert.issuer != ctx.ica_cert.subject:
        return ClientCertStatus(revoked_at=None, recorded=False)  # not the ICA's: not in its record
    with ctx.sessions() as session:
        revocation = store.find_revocation(session, cert.serial_number)
        recorded = store.find_certificate(session, cert.serial_number)
        fingerprint = cert.fingerprint(hashes.SHA256()).hex()
        return ClientCertStatus(
            revoked_at=revocation.revoked_at.isoformat() if revocation is not None else None,
            recorded=recorded is not None and recorded.fingerprint_sha256 == fingerprint,
        )


def refusal_for(cert: x509.Certificate, status: ClientCertStatus, require_recorded: bool) -> Problem | None:
    """The problem to answer for ``cert`` with ``status``, or None to let the request through."""
    serial = store.serial_hex(cert.serial_number)
    if status.revoked_at is not None:
        return Problem(
            401,
            "client-certificate-revoked",
            "Client certificate revoked",
            f"client certificate serial {serial} was revoked at {status.revoked_at}",
        )
    if require_recorded and not status.recorded:
        return Problem(
            401,
            "client-certificate-unknown",
            "Client certificate not recorded",
            f"client certificate serial {serial} is not recorded in the CA store",
        )
    return None


class ClientRevocationMiddleware:
    """ASGI middleware: a revoked (or, if required, unrecorded) client certificate gets a 401."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx
        self.require_recorded = ctx.config.require_recorded_client_certs
        self.cache = StatusCache(ctx.config.client_revocation_ttl)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        der = client_certificate_der(scope) if scope["type"] == "http" else None
        if der is not None:
            cert = x509.load_der_x509_certificate(der)
            key = hashlib.sha256(der).hexdigest()
            status = self.cache.get(key)
            if status is None:
                status = await anyio.to_thread.run_sync(lookup_status, self.ctx, cert)
                self.cache.put(key, status)
            problem = refusal_for(cert, status, self.require_recorded)
            if problem is not None:
                await anyio.to_thread.run_sync(self._audit, scope, cert, der, problem)
                await problem_response(problem, scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _audit(self, scope: Scope, cert: x509.Certificate, der: bytes, problem: Problem) -> None:
        role = role_from_certificate(cert)
        self.ctx.audit_refusal(
            certificate_name(cert),
            hashlib.sha256(der).hexdigest(),
            role.value if role is not None else "none",
            f"{scope['method']} {scope['path']}",
            "-",
            {
                "reason": problem.detail,
                "status": problem.status,
                "problem": problem.slug,
                "serial": store.serial_hex(cert.serial_number),
            },
        )
