"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hookline.errors import StoreError
from hookline.metrics import QUEUE_DEPTH_CAP, Metrics
from hookline.store.base import Store
from hookline.web.auth import bearer, token_matches
from hookline.web.responses import JSON, error

log = logging.getLogger("hookline.http")


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: the store answers, can write, and has the current schema. Answered within
    about a second (the store bounds its probe), with a fixed code: the driver's text
    (host names, paths) goes to the log only."""
    store: Store = request.app.state.store
    try:
        await store.check_ready()
    except (StoreError, OSError) as exc:
        log.warning("not ready", extra={"error": str(exc)[:500]})
        return error(
            503,
            "storage_unavailable",
            "the storage is unreachable, full or not migrated; see the server log",
            headers={"retry-after": "1"},
        )
    return JSON({"status": "ready"})


async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics.token
    if token and not token_matches(bearer(request.scope), token):
        return error(
            401,
            "unauthorized",
            "missing or wrong metrics token",
            headers={"www-authenticate": "Bearer"},
        )
    store: Store = request.app.state.store
    m: Metrics = request.app.state.metrics
    if m.store_read_due():  # cheap reads, and at most every few seconds (see hookline.metrics)
        try:
            m.gauges.queue_depth = await store.queue_depth(QUEUE_DEPTH_CAP)
            m.gauges.workers = await store.live_workers()
            m.worker_counters.stats = await store.worker_stats()
        except StoreError:
            m.store_read_at = float("-inf")  # the request counters are still worth serving
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
