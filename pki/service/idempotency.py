"""``Idempotency-Key`` for every state-changing request (IETF draft-ietf-httpapi-idempotency-key).

A retried request (same client, same key, same method/path/body) gets the stored answer back
byte for byte, so a desktop tool that lost a response can simply resend. The same key with a
different request is refused (422), as is a malformed key; a key whose first request is still
running gets 409.
Answers with status >= 500 are not stored, so a retry after a server fault runs again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import anyio
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pki.service.models import IdempotencyRecord
from pki.service.problems import PROBLEM_MEDIA_TYPE, Problem

HEADER = b"idempotency-key"
REPLAYED_HEADER = b"idempotent-replayed"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: What an Idempotency-Key may look like (visible ASCII, as UUIDs and random tokens are).
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


def _problem_message(problem: Problem, path: str) -> tuple[int, bytes]:
    return problem.status, json.dumps(problem.body(path)).encode()


class IdempotencyMiddleware:
    """ASGI middleware: replays stored answers for repeated ``Idempotency-Key`` requests."""

    def __init__(
        self,
        app: ASGIApp,
        sessions: sessionmaker[Session],
        client_id: Callable[[Scope], str],
        routes: Sequence[BaseRoute],
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.client_id = client_id
        self.routes = routes

    def _is_route(self, scope: Scope) -> bool:
        """Only requests an endpoint will handle are tracked (others get their 404/405 as usual)."""
        return any(route.matches(scope)[0] == Match.FULL for route in self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        raw_key = next((v for k, v in scope["headers"] if k == HEADER), None)
        if raw_key is None or not self._is_route(scope):
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if KEY_PATTERN.fullmatch(key) is None:
            await self._send_problem(
                send,
                scope,
                Problem(
                    422,
                    "bad-idempotency-key",
                    "Bad Idempotency-Key",
                    "Idempotency-Key must be 1-255 visible ASCII characters",
                ),
            )
            return

        body = await _read_body(receive)
        client = self.client_id(scope)
        # Keys are scoped per client and endpoint (method + path), as in the IETF draft's examples.
        scope_id = hashlib.sha256(f"{client}\0{scope['method']}\0{scope['path']}\0{key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(
            b"\0".join(
                [scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body]
            )
        ).hexdigest()

        existing = await anyio.to_thread.run_sync(self._claim, scope_id, fingerprint)
        if existing is not None:
            if existing.request_sha256 != fingerprint:
                await self._send_problem(
                    send,
                    scope,
                    Problem(
                        422,
                        "idempotency-key-reused",
                        "Idempotency-Key reused",
                        "this Idempotency-Key was already used with a different request",
                    ),
                )
            elif existing.status_code is None:
                await self._send_problem(
                    send,
                    scope,
                    Problem(
                        409,
                        "idempotency-in-progress",
                        "Request in progress",
                        "the first request with this Idempotency-Key is still running; retry later",
                    ),
                )
            else:
                await self._send_stored(send, existing)
            return

        # Buffer the answer and store it BEFORE the client sees it: a client that retries the
        # moment it has the first answer must get the replay, not "in progress".
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        try:
            await self.app(scope, _replay_receive(body, receive), capture)
        except BaseException:
            await anyio.to_thread.run_sync(self._finish, scope_id, None, None, b"")
            raise
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        status = int(start["status"]) if start is not None else None
        headers: list[tuple[bytes, bytes]] = list(start.get("headers", [])) if start is not None else []
        content_type = next((v.decode() for k, v in headers if k.lower() == b"content-type"), None)
        payload = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        await anyio.to_thread.run_sync(self._finish, scope_id, status, content_type, payload)
        for message in messages:
            await send(message)

    def _claim(self, scope_id: str, fingerprint: str) -> IdempotencyRecord | None:
        """Insert an in-flight marker; return the existing record when the key was seen before."""
        with self.sessions() as session:
            session.add(
                IdempotencyRecord(
                    scope=scope_id, request_sha256=fingerprint, created_at=datetime.now(UTC), status_code=None
                )
            )
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
        with self.sessions() as session:
            record = session.get(IdempotencyRecord, scope_id)
            if record is None:  # the first request failed with a 5xx and released the key meanwhile
                return self._claim(scope_id, fingerprint)
            session.expunge(record)
            return record

    def _finish(self, scope_id: str, status: int | None, content_type: str | None, body: bytes) -> None:
        with self.sessions() as session:
            record = session.get(IdempotencyRecord, scope_id)
            if record is None:
                return
            if status is None or status >= 500:
                session.delete(record)
            else:
                record.status_code = status
                record.content_type = content_type
                record.body = body
            session.commit()

    async def _send_stored(self, send: Send, record: IdempotencyRecord) -> None:
        body = record.body or b""
        headers = [(b"content-length", str(len(body)).encode()), (REPLAYED_HEADER, b"true")]
        if record.content_type:
            headers.append((b"content-type", record.content_type.encode()))
        await send({"type": "http.response.start", "status": record.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _send_problem(self, send: Send, scope: Scope, problem: Problem) -> None:
        status, body = _problem_message(problem, scope["path"])
        headers = [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay_receive(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
