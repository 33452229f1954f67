"""``POST /webhooks/{source}`` as a bare ASGI app: the hot path, kept lean.

Before reading the body it refuses what cannot be valid (400: the provider's headers
missing, its signed timestamp already stale). It then reads the body chunk by chunk (a
413 as soon as the limit is passed, a 503 as soon as the process's ``BufferBudget`` of
bodies in memory is spent, reading no further either way), hands the raw bytes to the
``Ingestor`` and answers only after the store has committed the event to disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from hookline import logs
from hookline.errors import StoreError
from hookline.ingest import Ingestor, Rejected
from hookline.metrics import Metrics
from hookline.providers import Handshake
from hookline.web.limits import OVERLOADED, RETRY_AFTER_SECONDS, BufferBudget, Reservation
from hookline.web.responses import dumps

log = logging.getLogger("hookline.webhooks")
PREFIX = "/webhooks/"
Scope = MutableMapping[str, Any]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class _OverBudget(Exception):
    pass


_JSON = (b"content-type", b"application/json")


async def _send_json(send: Any, status: int, payload: dict[str, Any], extra: list[Any]) -> None:
    body = dumps(payload)  # what orjson cannot write too (a job's result with "\ud800")
    headers = [_JSON, (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(
    receive: Any, limit: int, budget: Callable[[int], bool] | None = None
) -> bytes:
    """The whole body, up to ``limit`` bytes; ``budget(n)`` is asked for every ``n`` bytes
    held beyond what was reserved before (``_OverBudget`` when it says no)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        if budget is not None and not budget(len(chunk)):
            raise _OverBudget
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class WebhookEndpoint:
    def __init__(
        self,
        ingestor: Ingestor,
        metrics: Metrics,
        max_body_bytes: int,
        budget: BufferBudget | None = None,
    ) -> None:
        self._ingestor = ingestor
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._budget = budget or BufferBudget(2**63)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        name = scope["path"][len(PREFIX) :]
        source = self._ingestor.source(name)
        label = name if source is not None else "_unknown"
        status, answer, extra = await self._handle(scope, receive, source)
        handshake = answer.kind if isinstance(answer, Handshake) else ""
        payload = answer.answer if isinstance(answer, Handshake) else answer
        if status == 0:  # client went away: nothing to answer
            outcome = "disconnected"
        else:
            await _send_json(send, status, payload, extra)
            if handshake:
                outcome = "handshake"
            else:
                error = payload.get("error")
                outcome = error or ("duplicate" if payload["duplicate"] else "accepted")
        elapsed = time.perf_counter() - started
        self._metrics.webhook_answered(label, outcome, elapsed if status == 200 else None)
        fields = {
            "source": name[:64],
            "status": status,
            "outcome": outcome,
            "ms": round(elapsed * 1000, 3),
            "id": payload.get("id"),
            "event_id": payload.get("eventId"),
        }
        if status >= 400:  # why it was refused; details never hold a signature or secret
            fields["error"] = payload["error"]
            fields["detail"] = payload["detail"]
        elif handshake:
            fields["handshake"] = handshake
        logs.info(log, "webhook", fields)

    async def _handle(
        self, scope: Scope, receive: Any, source: Any
    ) -> tuple[int, dict[str, Any] | Handshake, list[Any]]:
        if scope["method"] != "POST":
            return 405, {"error": "method_not_allowed", "detail": "use POST"}, [(b"allow", b"POST")]
        if source is None:
            return 404, {"error": "unknown_source", "detail": "no source with this name"}, []
        limit = source.max_body_bytes or self._max_body
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            key = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return 413, _too_large(limit), [(b"connection", b"close")]
        try:  # refuse what cannot verify before reading a byte of the body
            self._ingestor.check_headers(source, headers)
        except Rejected as exc:
            return (
                exc.status,
                {"error": exc.code, "detail": exc.detail},
                [(b"connection", b"close")],
            )
        # Bytes are counted as they arrive (not as declared: a declared length costs an
        # attacker nothing), and given back once the request is answered.
        held = Reservation(self._budget)
        try:
            return await self._verify_and_store(receive, source, headers, limit, held.take)
        finally:
            held.release()

    async def _verify_and_store(
        self,
        receive: Any,
        source: Any,
        headers: dict[str, str],
        limit: int,
        budget: Callable[[int], bool],
    ) -> tuple[int, dict[str, Any] | Handshake, list[Any]]:
        try:
            body = await _read_body(receive, limit, budget)
        except _TooLarge:
            return 413, _too_large(limit), [(b"connection", b"close")]
        except _OverBudget:
            return 503, dict(OVERLOADED), _OVERLOADED_HEADERS
        except _Disconnected:
            return 0, {}, []
        try:
            accepted = await self._ingestor.receive(source, headers, body)
        except Rejected as exc:
            return exc.status, {"error": exc.code, "detail": exc.detail}, []
        except StoreError as exc:
            log.error("store failed", extra={"error": str(exc)})
            return (
                503,
                {"error": "storage_unavailable", "detail": "try again later"},
                [(b"retry-after", b"1")],
            )
        if isinstance(accepted, Handshake):  # a signed check of the endpoint: nothing stored
            return 200, accepted, []
        return (
            200,
            {"id": accepted.id, "eventId": accepted.event_id, "duplicate": accepted.duplicate},
            [],
        )


_OVERLOADED_HEADERS = [(b"retry-after", b"%d" % RETRY_AFTER_SECONDS), (b"connection", b"close")]


def _too_large(limit: int) -> dict[str, Any]:
    return {"error": "payload_too_large", "detail": f"body exceeds {limit} bytes"}
