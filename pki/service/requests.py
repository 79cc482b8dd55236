"""Every request: a request id, the caller's certificate for the audit, no stack traces out, and
every refusal in the audit log.

The outermost middleware. It gives each request an id (``X-Request-ID`` on the answer, and in
every log line about it), makes the caller's certificate hash the default ``actor_cert`` of
audit rows written while serving it, and turns any exception into ``500 internal`` itself —
logged as its class and the request id, the traceback only at debug level, since exception
messages from the database or crypto libraries can carry request data (SQL parameters, CSR
fields). Then, if the answer is a refusal (status >= 400) that no handler audited, it writes
one bounded row for it (``ServiceContext.audit_refusal``): 403 no-role, 404s, 405, 413, 415,
422 validation errors, 500s — so every refusal is in the log exactly once (or counted in a
``refusals-suppressed`` row past the client's budget). A request dropped because its body never
arrived completely (``pki.service.bodies``) sends no answer and leaves no row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from typing import Any

import anyio
from cryptography import x509
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pki.ca import role_from_certificate
from pki.service import audit, refusals
from pki.service.auth import certificate_name, client_certificate_der
from pki.service.context import ServiceContext
from pki.service.problems import Problem, send_problem

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
#: Bytes of a refusal's body read to find its problem slug.
SLUG_PEEK_BYTES = 4096
_UID_IN_PATH = re.compile(r"^/v1/boards/([0-9A-Fa-f]{24})(?:/|$)")


class RequestMiddleware:
    """ASGI middleware: request id, caller context, exceptions as 500 problems, refusals audited."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        der = client_certificate_der(scope)
        cert_token = audit.current_actor_cert.set(hashlib.sha256(der).hexdigest() if der else "")
        marks: list[str] = []
        marks_token = refusals.recorded.set(marks)
        status: int | None = None
        held: list[Message] = []  # a refusal's answer, sent once its row is written

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
                message = {**message, "headers": headers}
            if status is None or status < 400:
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await self._audit_then_send(scope, der, status, held, marks, request_id, send)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.error("request %s: unexpected %s", request_id, type(exc).__name__)
            log.debug("request %s: traceback", request_id, exc_info=True)
            if status is None:
                problem = Problem(
                    500, "internal", "Internal error", f"the service failed; request id {request_id}"
                )
                await send_problem(tracked, scope, problem)
        finally:
            audit.current_actor_cert.reset(cert_token)
            refusals.recorded.reset(marks_token)

    async def _audit_then_send(
        self,
        scope: Scope,
        der: bytes | None,
        status: int,
        held: list[Message],
        marks: list[str],
        request_id: str,
        send: Send,
    ) -> None:
        if not marks:  # no handler audited this refusal itself
            body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
            try:
                await anyio.to_thread.run_sync(
                    self._audit, scope, der, status, _slug(body[:SLUG_PEEK_BYTES]), request_id
                )
            except Exception as exc:
                log.error("request %s: refusal not audited: %s", request_id, type(exc).__name__)
        for message in held:
            await send(message)
        held.clear()

    def _audit(self, scope: Scope, der: bytes | None, status: int, slug: str, request_id: str) -> None:
        actor, role, actor_cert = "-", "none", ""
        if der is not None:
            cert = x509.load_der_x509_certificate(der)
            actor = certificate_name(cert)
            found = role_from_certificate(cert)
            role = found.value if found is not None else "none"
            actor_cert = hashlib.sha256(der).hexdigest()
        elif self.ctx.config.insecure_dev:
            actor, role, actor_cert = "insecure-dev", "admin", "insecure-dev"
        path = scope["path"]
        match = _UID_IN_PATH.match(path)
        detail: dict[str, Any] = {"status": status, "problem": slug, "request_id": request_id}
        # a long path is cut in ``action``, with the SHA-256 of the whole in ``action_sha256``
        self.ctx.audit_refusal(
            actor,
            actor_cert,
            role,
            f"{scope['method']} {path}",
            match.group(1).upper() if match else "-",
            detail,
        )


def _slug(body: bytes) -> str:
    """The problem slug of a refusal body (the last segment of its ``type``), or ``unknown``."""
    try:
        doc = json.loads(body)
    except ValueError:
        return "unknown"
    kind = doc.get("type") if isinstance(doc, dict) else None
    return kind.rsplit("/", 1)[-1][:64] if isinstance(kind, str) else "unknown"
