"""``Idempotency-Key`` for every state-changing request (IETF draft-ietf-httpapi-idempotency-key).

A retried request (same client, same key, same method/path/content type/body) gets the stored
answer back — same status, headers (``X-Image-SHA256``, ``X-Image-Version`` ...) and body — so a
desktop tool that lost a response can simply resend. The same key with a different request is
refused (422), as is a malformed key; a key whose first request is still running gets 409.

Recovery: the first request holds its record by a lease (``lease_until``, renewed by a heartbeat
while it runs, and an ``owner`` token). A worker that died — crash, restart, another process
killed — stops renewing, so once the lease has run out a retry takes the record over and runs
the request again; the handlers below are idempotent by state (same certificate for the same
CSR, the existing secure-boot key, a new signature over the same image), so that second run
repeats nothing irreversible. A worker that lost its lease cannot overwrite its successor's
answer (every write is conditional on ``owner``).

Answers with status >= 500 are not stored, so a retry after a server fault runs again. Stored
answers expire after ``retention`` seconds (then the key may be used afresh); expired records
are purged at most once a minute (or once per retention, if shorter). UIDs in paths are hex, so
the path is compared lower-cased: an upper- and a lower-case spelling of one board share one key
space.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import anyio
from sqlalchemy import CursorResult, delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pki.service.models import IdempotencyRecord
from pki.service.problems import Problem, send_problem

HEADER = b"idempotency-key"
REPLAYED_HEADER = b"idempotent-replayed"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: What an Idempotency-Key may look like (visible ASCII, as UUIDs and random tokens are).
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
#: Response headers never stored (recomputed on replay).
UNSTORED_HEADERS = frozenset({b"content-length", b"date", b"server", b"x-request-id"})
PURGE_EVERY_S = 60.0


@dataclass(frozen=True)
class Claim:
    """What ``_claim`` decided: run the request (``owner``), replay ``record``, or refuse."""

    outcome: str  # "run" | "stored" | "reused" | "busy"
    owner: str = ""
    record: IdempotencyRecord | None = None


def request_fingerprint(method: str, path: str, query: bytes, content_type: str, body: bytes) -> str:
    """SHA-256 over everything that makes two requests "the same" for a key."""
    return hashlib.sha256(
        b"\0".join([method.encode(), path.encode(), query, content_type.encode("latin-1"), body])
    ).hexdigest()


class IdempotencyMiddleware:
    """ASGI middleware: replays stored answers for repeated ``Idempotency-Key`` requests."""

    def __init__(
        self,
        app: ASGIApp,
        sessions: sessionmaker[Session],
        client_id: Callable[[Scope], str],
        routes: Sequence[BaseRoute],
        lease: float,
        retention: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.client_id = client_id
        self.routes = routes
        self.lease = lease
        self.retention = retention
        self.clock = clock
        self._next_purge = 0.0

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
            await send_problem(
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
        if body is None:  # the client went away (pki.service.bodies normally catches this first)
            return
        path = scope["path"].lower()
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"").decode("latin-1")
        content_type = "".join(content_type.split()).lower()
        client = self.client_id(scope)
        # Keys are scoped per client and endpoint (method + path), as in the IETF draft's examples.
        scope_id = hashlib.sha256(f"{client}\0{scope['method']}\0{path}\0{key}".encode()).hexdigest()
        fingerprint = request_fingerprint(
            scope["method"], path, scope.get("query_string", b""), content_type, body
        )

        claim = await anyio.to_thread.run_sync(self._claim, scope_id, fingerprint)
        if claim.outcome == "reused":
            await send_problem(
                send,
                scope,
                Problem(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    "this Idempotency-Key was already used with a different request",
                ),
            )
            return
        if claim.outcome == "busy":
            await send_problem(
                send,
                scope,
                Problem(
                    409,
                    "idempotency-in-progress",
                    "Request in progress",
                    "the first request with this Idempotency-Key is still running; retry later",
                    retry_after_s=self.lease,
                ),
            )
            return
        if claim.outcome == "stored":
            assert claim.record is not None
            await self._send_stored(send, claim.record)
            return

        # Buffer the answer and store it BEFORE the client sees it: a client that retries the
        # moment it has the first answer must get the replay, not "in progress".
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._heartbeat, scope_id, claim.owner)
                try:
                    await self.app(scope, _replay_receive(body, receive), capture)
                finally:
                    group.cancel_scope.cancel()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._finish, scope_id, claim.owner, None, [], b"")
            raise
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        status = int(start["status"]) if start is not None else None
        headers: list[tuple[bytes, bytes]] = list(start.get("headers", [])) if start is not None else []
        payload = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        await anyio.to_thread.run_sync(self._finish, scope_id, claim.owner, status, headers, payload)
        for message in messages:
            await send(message)

    async def _heartbeat(self, scope_id: str, owner: str) -> None:
        """Renew the lease while the request runs (a dead worker stops renewing)."""
        while True:
            await anyio.sleep(self.lease / 3)
            await anyio.to_thread.run_sync(self._renew, scope_id, owner)

    def _renew(self, scope_id: str, owner: str) -> None:
        with self.sessions() as session:
            session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.scope == scope_id, IdempotencyRecord.owner == owner)
                .values(lease_until=self.clock() + self.lease)
            )
            session.commit()

    def _purge(self, session: Session, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + min(PURGE_EVERY_S, self.retention)
        session.execute(
            delete(IdempotencyRecord).where(
                or_(IdempotencyRecord.expires_at < now, IdempotencyRecord.expires_at.is_(None)),
                or_(IdempotencyRecord.lease_until < now, IdempotencyRecord.lease_until.is_(None)),
            )
        )
        session.commit()

    def _claim(self, scope_id: str, fingerprint: str) -> Claim:
        """Insert an in-flight record, take over one whose lease ran out, or report the existing one."""
        owner = secrets.token_hex(16)
        for _ in range(3):
            now = self.clock()
            with self.sessions() as session:
                self._purge(session, now)
                session.add(
                    IdempotencyRecord(
                        scope=scope_id,
                        request_sha256=fingerprint,
                        created_at=datetime.now(UTC),
                        status_code=None,
                        owner=owner,
                        lease_until=now + self.lease,
                        expires_at=now + self.retention,
                    )
                )
                try:
                    session.commit()
                    return Claim("run", owner)
                except IntegrityError:
                    session.rollback()
                record = session.get(IdempotencyRecord, scope_id)
                if record is None:  # released meanwhile (a 5xx): try again
                    continue
                expired = record.expires_at is None or record.expires_at < now
                stale = record.status_code is None and (record.lease_until or 0.0) < now
                if expired or stale:  # take it over, unless another retry just did
                    held_by = (
                        IdempotencyRecord.owner.is_(None)
                        if record.owner is None
                        else IdempotencyRecord.owner == record.owner
                    )
                    taken = session.execute(
                        update(IdempotencyRecord)
                        .where(IdempotencyRecord.scope == scope_id, held_by)
                        .values(
                            request_sha256=fingerprint,
                            status_code=None,
                            headers=None,
                            body=None,
                            owner=owner,
                            lease_until=now + self.lease,
                            expires_at=now + self.retention,
                            created_at=datetime.now(UTC),
                        )
                    )
                    session.commit()
                    if cast("CursorResult[Any]", taken).rowcount == 1:
                        return Claim("run", owner)
                    continue
                if record.request_sha256 != fingerprint:
                    return Claim("reused")
                if record.status_code is None:
                    return Claim("busy")
                session.expunge(record)
                return Claim("stored", record=record)
        return Claim("busy")

    def _finish(
        self,
        scope_id: str,
        owner: str,
        status: int | None,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        with self.sessions() as session:
            record = session.get(IdempotencyRecord, scope_id)
            if record is None or record.owner != owner:  # our lease ran out and a retry took over
                return
            if status is None or status >= 500:
                session.delete(record)
            else:
                kept = [
                    [k.decode("latin-1").lower(), v.decode("latin-1")]
                    for k, v in headers
                    if k.lower() not in UNSTORED_HEADERS
                ]
                record.status_code = status
                record.headers = json.dumps(kept)
                record.content_type = next((v for k, v in kept if k == "content-type"), None)
                record.body = body
                record.lease_until = None
            session.commit()

    async def _send_stored(self, send: Send, record: IdempotencyRecord) -> None:
        body = record.body or b""
        stored: list[list[str]] = json.loads(record.headers) if record.headers else []
        if not stored and record.content_type:  # a record from before headers were stored
            stored = [["content-type", record.content_type]]
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored]
        headers += [(b"content-length", str(len(body)).encode()), (REPLAYED_HEADER, b"true")]
        await send({"type": "http.response.start", "status": record.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes | None:
    """The complete body, or None when the client disconnected first."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
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
