"""RFC 9457 ``application/problem+json`` errors: every failure the service returns has this shape.

One exception type (``Problem``) carries status, a stable ``type`` slug and a one-line detail; the
handlers below turn it, FastAPI's validation errors and any unexpected exception into problem
documents, so clients parse one error format and never see a stack trace or a secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope, Send

from pki.errors import (
    CaError,
    CsrError,
    HsmError,
    KeyNotFoundError,
    LintError,
    PkiError,
    StoreError,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://nusec.dev/problems/"

log = logging.getLogger(__name__)


class Problem(Exception):
    """An error the service answers with; ``slug`` names it in the problem ``type`` URI."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


def problem_response(
    problem: Problem, instance: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


async def send_problem(send: Send, scope: Scope, problem: Problem) -> None:
    """Answer ``problem`` straight from an ASGI middleware (no response object needed)."""
    body = json.dumps(problem.body(scope["path"])).encode()
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def from_pki_error(err: PkiError) -> Problem:
    """Map the pki layer's errors to HTTP statuses: bad client input is 422, HSM trouble is 503."""
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, CsrError):
        return Problem(422, "csr-refused", "CSR refused by policy", message)
    if isinstance(err, LintError):
        return Problem(500, "lint-failed", "Certificate failed linting", message)
    if isinstance(err, CaError):
        return Problem(422, "issuance-refused", "Issuance refused", message)
    if isinstance(err, KeyNotFoundError):
        return Problem(409, "key-missing", "Key not found in the HSM", message)
    if isinstance(err, HsmError):
        return Problem(503, "hsm-unavailable", "HSM operation failed", message)
    if isinstance(err, StoreError):
        return Problem(409, "store-conflict", "Store refused the write", message)
    return Problem(500, "pki-error", "PKI error", message)


# Problem bodies as an OpenAPI response description (so schemathesis and clients know the shape).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry for a route: each listed status returns a problem document."""
    return {
        status: {
            "description": "Problem (RFC 9457)",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


def _allowed_methods(app: FastAPI, request: Request) -> set[str]:
    """Methods of every route whose path matches (``app.state.api_routes``: the flat route list,
    since included routers do not expose their routes' methods)."""
    methods: set[str] = set()
    for route in getattr(app.state, "api_routes", app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return methods


def install_handlers(app: FastAPI) -> None:
    """Route every error path of ``app`` through a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(PkiError)
    async def _pki(request: Request, exc: PkiError) -> JSONResponse:
        return problem_response(from_pki_error(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return problem_response(Problem(422, "invalid-request", "Invalid request", detail), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        if exc.status_code == 405:  # Starlette's Allow names one route's methods; list all of the path's
            exc.headers = {"Allow": ", ".join(sorted(_allowed_methods(app, request)))}
        return problem_response(  # keep Starlette's headers (Allow on 405)
            Problem(exc.status_code, f"http-{exc.status_code}", title, str(exc.detail)),
            request.url.path,
            exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Log the class only: messages from crypto/HSM libraries may carry material we must not log.
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem_response(
            Problem(500, "internal", "Internal error", "the service failed; see the server log"),
            request.url.path,
        )
