"""The FastAPI application factory: routes, problem+json errors, idempotency, body-size limit.

``create_app(ctx)`` is pure wiring; everything stateful lives in the ``ServiceContext`` it gets,
so tests and ``nusec serve`` build the same app.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from pki.service import __version__
from pki.service.auth import client_id
from pki.service.client_revocation import ClientRevocationMiddleware
from pki.service.context import ServiceContext
from pki.service.idempotency import IdempotencyMiddleware
from pki.service.problems import PROBLEM_MEDIA_TYPE, Problem, install_handlers
from pki.service.routes import ROUTERS

#: Bytes allowed in a request body beyond the firmware limit (JSON bodies are far smaller).
BODY_SLACK = 64 * 1024


class BodyLimitMiddleware:
    """Refuse (413) any request body larger than ``limit`` before it is buffered anywhere."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        received = 0

        async def counted() -> dict[str, object]:
            nonlocal received
            message = dict(await receive())
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body) if isinstance(body, bytes) else 0
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        problem = Problem(
            413,
            "body-too-large",
            "Request body too large",
            f"request bodies are limited to {self.limit} bytes",
        )
        body = json.dumps(problem.body(scope["path"])).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(ctx: ServiceContext) -> FastAPI:
    """The OEM service app bound to ``ctx`` (HSM, CA, database)."""
    app = FastAPI(
        title="NuSec OEM service",
        version=__version__,
        description=(
            "Board registration, certificates, secure-boot keys, firmware signing and authenticated ECDH "
            "for Nu-Link3 provisioning. Mutual TLS; errors are RFC 9457 problem documents. "
            "See docs/service-api.md."
        ),
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    api_routes = [route for router in ROUTERS for route in router.routes]
    app.state.api_routes = api_routes  # the flat /v1 route list (Allow headers, idempotency)
    app.add_middleware(IdempotencyMiddleware, sessions=ctx.sessions, client_id=client_id, routes=api_routes)
    app.add_middleware(BodyLimitMiddleware, limit=ctx.config.max_firmware_bytes + BODY_SLACK)
    app.add_middleware(ClientRevocationMiddleware, ctx=ctx)  # outermost: every request, replays too
    return app
