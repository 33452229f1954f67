"""The jobs gateway under ``/jobs/`` as a bare ASGI app (enqueueing is a hot path too).

    POST /jobs/{name}            enqueue (202 {jobId, status}, Location)
    GET  /jobs/{jobId}           the job
    POST /jobs/{jobId}/cancel    cancel it (202; 409 once finished)
    GET  /jobs/openapi.json      the OpenAPI document of the configured jobs

Every request needs a Bearer key of ``[api] keys`` (compared in constant time with each;
none configured: every request is 401). The admin token is no API key. The body is read
chunk by chunk up to ``[server] max_body_bytes`` (413, reading no further), and the 202 is
sent once the job is committed to disk.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from hookline import logs
from hookline.errors import StoreError
from hookline.jobs import JobRejected, Jobs, parse_delay, parse_idempotency_key
from hookline.metrics import Metrics
from hookline.web.jobs_shapes import JobAccepted, job_view
from hookline.web.limits import OVERLOADED, RETRY_AFTER_SECONDS, BufferBudget, Reservation
from hookline.web.webhooks import _Disconnected, _OverBudget, _read_body, _send_json, _TooLarge

# The body is read, and the answer written, by the webhook endpoint's own helpers: one way
# to enforce max_body_bytes (413 while reading) for both hot paths.
log = logging.getLogger("hookline.jobs")
PREFIX = "/jobs/"
Scope = MutableMapping[str, Any]
# status (0: the client went away), body, extra headers, the outcome that is logged
Answer = tuple[int, dict[str, Any], list[tuple[bytes, bytes]], str]


def api_key_matches(presented: str, keys: Sequence[str]) -> bool:
    """Constant time against every key (none is skipped: timing tells not which matched)."""
    if not presented:
        return False
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched


def _reject(exc: JobRejected) -> Answer:
    payload: dict[str, Any] = {"error": exc.code, "detail": exc.detail}
    if exc.errors is not None:
        payload["errors"] = exc.errors
    return exc.status, payload, [], exc.code


def _error(
    status: int, code: str, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> Answer:
    return status, {"error": code, "detail": detail}, extra or [], code


class JobsGateway:
    def __init__(
        self,
        jobs: Jobs,
        api_keys: Sequence[str],
        max_body_bytes: int,
        metrics: Metrics,
        document: Callable[[], dict[str, Any]],
        budget: BufferBudget | None = None,
    ) -> None:
        self._jobs = jobs
        self._keys = tuple(api_keys)
        self._max_body = max_body_bytes
        # the webhooks' budget: bodies held in memory count once, whichever route reads them
        self._budget = budget or BufferBudget(2**63)
        self._metrics = metrics
        self._document = document

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        headers: dict[str, str] = {}
        repeated: set[str] = set()
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            if name in headers:
                repeated.add(name)
            headers[name] = raw_value.decode("latin-1")
        route = scope["path"][len(PREFIX) :]
        try:
            status, payload, extra, outcome = await self._route(
                scope, receive, route, headers, repeated
            )
        except StoreError as exc:
            log.error("store failed", extra={"error": str(exc)})
            status, payload, extra, outcome = _error(
                503, "storage_unavailable", "try again later", [(b"retry-after", b"1")]
            )
        if status != 0:  # 0: the client went away, nothing to answer
            await _send_json(send, status, payload, extra)
        elapsed = time.perf_counter() - started
        self._metrics.webhook_answered("jobs", outcome, elapsed if status == 202 else None)
        fields = {
            "method": scope["method"],
            "path": scope["path"][:200],
            "status": status,
            "outcome": outcome,
            "ms": round(elapsed * 1000, 3),
            "job_id": payload.get("jobId"),
        }
        logs.info(log, "job", fields)

    async def _route(
        self, scope: Scope, receive: Any, route: str, headers: dict[str, str], repeated: set[str]
    ) -> Answer:
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not api_key_matches(credentials.strip(), self._keys):
            detail = "missing or wrong API key" if self._keys else "no API key is configured"
            return _error(401, "unauthorized", detail, [(b"www-authenticate", b"Bearer")])
        method = scope["method"]
        parts = route.split("/")
        if route == "openapi.json" and method == "GET":
            return 200, self._document(), [], "ok"
        if len(parts) == 1 and parts[0]:
            if method == "POST":
                return await self._enqueue(receive, parts[0], headers, repeated)
            if method == "GET":
                try:
                    record = await self._jobs.get(parts[0])
                except JobRejected as exc:
                    return _reject(exc)
                return 200, job_view(record), [], "ok"
            return _error(405, "method_not_allowed", "use GET or POST", [(b"allow", b"GET, POST")])
        if len(parts) == 2 and parts[0] and parts[1] == "cancel":
            if method != "POST":
                return _error(405, "method_not_allowed", "use POST", [(b"allow", b"POST")])
            try:
                record = await self._jobs.cancel(parts[0])
            except JobRejected as exc:
                return _reject(exc)
            answer = JobAccepted(job_id=record.summary.id, status="cancelled")
            return 202, answer.model_dump(by_alias=True), [], "cancelled"
        return _error(404, "not_found", "no such path under /jobs/")

    async def _enqueue(
        self, receive: Any, name: str, headers: dict[str, str], repeated: set[str]
    ) -> Answer:
        if self._jobs.handler(name) is None:
            return _error(404, "unknown_job", f"no job named {name!r} is configured")
        key = None
        delay = 0.0
        try:
            for header in ("idempotency-key", "hookline-delay"):
                if header in repeated:
                    raise ValueError(f"send one {header} header")
            if "idempotency-key" in headers:
                key = parse_idempotency_key(headers["idempotency-key"])
            if "hookline-delay" in headers:
                delay = parse_delay(headers["hookline-delay"])
        except ValueError as exc:
            return _error(400, "invalid_header", str(exc))
        declared = headers.get("content-length", "")
        too_large = f"body exceeds {self._max_body} bytes"
        close = [(b"connection", b"close")]
        if declared.isdigit() and int(declared) > self._max_body:
            return _error(413, "payload_too_large", too_large, close)
        held = Reservation(self._budget)  # given back once the job is stored (or refused)
        try:
            try:
                body = await _read_body(receive, self._max_body, held.take)
            except _TooLarge:
                return _error(413, "payload_too_large", too_large, close)
            except _OverBudget:
                retry = [(b"retry-after", b"%d" % RETRY_AFTER_SECONDS), *close]
                return 503, dict(OVERLOADED), retry, "overloaded"
            except _Disconnected:
                return 0, {}, [], "disconnected"
            try:
                enqueued = await self._jobs.enqueue(
                    name, body, idempotency_key=key, delay_seconds=delay, headers=headers
                )
            except JobRejected as exc:
                return _reject(exc)
        finally:
            held.release()
        extra = [(b"location", f"/jobs/{enqueued.job_id}".encode())]
        if enqueued.replayed:
            extra.append((b"idempotent-replayed", b"true"))
        status = "queued" if enqueued.status == "unhandled" else enqueued.status
        return 202, {"jobId": enqueued.job_id, "status": status}, extra, enqueued.outcome
