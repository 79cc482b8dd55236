"""Request bodies: nothing runs until the whole body has arrived, and uploads are capped.

Why here and not in each handler: a client that declares ``Content-Length: 100000``, sends half
and hangs up must leave no trace (no signature, no state change, no idempotency record), and
that holds only if no layer below ever sees a partial body. So this middleware reads the body
completely first — refusing it (413) once it passes the limit, dropping the request silently
when the client disconnects or sends fewer bytes than it declared — and hands the layers below a
``receive`` that replays the complete body.

Bodies over ``LARGE_BODY_BYTES`` (firmware uploads) pass through a semaphore of
``max_concurrent_uploads`` slots held until the answer is sent, so N concurrent maximum-size
uploads cost at most ``config.upload_memory_bound`` bytes; the waiting ones are not read, and TCP
flow control holds their bytes back in the client. A body must arrive within ``timeout``
seconds (``408 body-timeout`` then), so slow senders cannot hold the slots for ever.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pki.service.problems import Problem, send_problem

log = logging.getLogger(__name__)


class BodyMiddleware:
    """ASGI middleware: complete bodies only, at most ``limit`` bytes, large ones capped."""

    def __init__(
        self, app: ASGIApp, limit: int, large: int, max_concurrent_uploads: int, timeout: float
    ) -> None:
        self.app = app
        self.limit = limit
        self.large = large
        self.uploads = anyio.Semaphore(max_concurrent_uploads)
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        declared = int(raw) if raw is not None and raw.isdigit() else None
        if declared is not None and declared > self.limit:
            await self._too_large(scope, send)
            return
        chunked = any(k == b"transfer-encoding" for k, _ in scope["headers"])
        async with AsyncExitStack() as stack:
            if (declared is not None and declared > self.large) or (declared is None and chunked):
                await stack.enter_async_context(self.uploads)  # a chunked body may be large too
            with anyio.move_on_after(self.timeout) as reading:
                body = await self._read(receive)
            if reading.cancelled_caught:
                log.info("request refused: its body did not arrive within %.0f s", self.timeout)
                problem = Problem(
                    408, "body-timeout", "Body too slow", f"the body must arrive within {self.timeout:g} s"
                )
                await send_problem(send, scope, problem)
                return
            if body is None:
                log.info("request aborted: the client disconnected before its body was complete")
                return
            if body is _TOO_LARGE:
                await self._too_large(scope, send)
                return
            if declared is not None and len(body) != declared:
                log.info("request aborted: body shorter than its Content-Length")
                return
            await self.app(scope, _replaying(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body; None if the client went away first; ``_TOO_LARGE`` past the limit."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            if size > self.limit:
                return _TOO_LARGE
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        problem = Problem(
            413,
            "body-too-large",
            "Request body too large",
            f"request bodies are limited to {self.limit} bytes",
        )
        await send_problem(send, scope, problem)


_TOO_LARGE = b"<too large>"  # a marker compared by identity


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` in one message, then the real channel (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
