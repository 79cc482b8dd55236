"""The FastAPI application factory: routes, problem+json errors, idempotency, complete bodies.

``create_app(ctx)`` is pure wiring; everything stateful lives in the ``ServiceContext`` it gets,
so tests and ``nusec serve`` build the same app.
"""

from __future__ import annotations

from fastapi import FastAPI

from pki.service import __version__
from pki.service.auth import client_id
from pki.service.bodies import BodyMiddleware
from pki.service.client_revocation import ClientRevocationMiddleware
from pki.service.config import LARGE_BODY_BYTES
from pki.service.context import ServiceContext
from pki.service.idempotency import IdempotencyMiddleware
from pki.service.problems import install_handlers
from pki.service.requests import RequestMiddleware
from pki.service.routes import ROUTERS

#: Bytes allowed in a request body beyond the firmware limit (JSON bodies are far smaller).
BODY_SLACK = 64 * 1024


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
    app.add_middleware(
        IdempotencyMiddleware,
        sessions=ctx.sessions,
        client_id=client_id,
        routes=api_routes,
        lease=ctx.config.idempotency_lease,
        retention=ctx.config.idempotency_retention,
    )
    app.add_middleware(
        BodyMiddleware,
        limit=ctx.config.max_firmware_bytes + BODY_SLACK,
        large=LARGE_BODY_BYTES,
        max_concurrent_uploads=ctx.config.max_concurrent_uploads,
        timeout=ctx.config.body_timeout,
    )
    app.add_middleware(ClientRevocationMiddleware, ctx=ctx)  # every request, replays too
    app.add_middleware(RequestMiddleware, ctx=ctx)  # outermost: request id, 500s, refusals audited
    return app
