"""Global bounds of one HTTP process, enforced in the ASGI layer.

- ``InFlightLimit``: at most ``[server] max_in_flight`` requests inside the app at once;
  the next ones are answered 503 ``overloaded`` + ``Retry-After`` without running.
- ``BufferBudget``: at most ``[server] max_buffered_bytes`` of request bodies (webhooks
  and jobs) held in memory (being received, verified or stored) at once; a body that does
  not fit is refused with the same 503 before (or as soon as) it would pass the budget.

Both turn overload into an answer the sender retries instead of an out-of-memory kill.
The caps on a request's head and the read deadlines are below the app, in
``hookline.web.protocol``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

RETRY_AFTER_SECONDS = 1
OVERLOADED = {"error": "overloaded", "detail": "the server is busy; retry later"}


async def send_overloaded(send: Send, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(OVERLOADED)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % RETRY_AFTER_SECONDS),
        (b"connection", b"close"),  # its body, if any, is not worth reading
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BufferBudget:
    """Bytes of request bodies held at once; ``take`` fails rather than exceed it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used -= size


class Reservation:
    """One request's share of a ``BufferBudget``, given back whole by ``release``."""

    def __init__(self, budget: BufferBudget) -> None:
        self._budget = budget
        self.held = 0

    def take(self, size: int) -> bool:
        if not self._budget.take(size):
            return False
        self.held += size
        return True

    def release(self) -> None:
        self._budget.give_back(self.held)
        self.held = 0


class InFlightLimit:
    """Wraps the app: a request beyond ``limit`` in flight gets 503 without running.

    ``/healthz`` is exempt: it costs nothing, and a liveness probe failing under load
    would have the process restarted just when it is busiest (``/readyz`` is not: taking
    an overloaded replica out of a load balancer's rotation is what it is for)."""

    EXEMPT = frozenset({"/healthz"})

    def __init__(self, app: ASGIApp, limit: int, on_refused: Any = None) -> None:
        self._app = app
        self.limit = limit
        self.in_flight = 0
        self._on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT:
            await self._app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            if self._on_refused is not None:
                self._on_refused(scope)
            await send_overloaded(send)
            return
        self.in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self.in_flight -= 1
