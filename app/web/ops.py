"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hookline.errors import StoreError
from hookline.metrics import Metrics
from hookline.store.base import RUN_STATUSES, Store
from hookline.web.responses import JSON, error

# Step attempts are recorded by the worker processes; /metrics turns the ones recorded since
# the previous scrape (since start, for the first) into the step duration histogram.
STEP_TIMINGS_PER_SCRAPE = 50_000


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    store: Store = request.app.state.store
    try:
        await store.check_ready()
    except (StoreError, OSError) as exc:
        return error(503, "not_ready", str(exc))
    return JSON({"status": "ready"})


async def metrics(request: Request) -> Response:
    store: Store = request.app.state.store
    m: Metrics = request.app.state.metrics
    try:
        counts = await store.run_counts()
        m.queue_depth.set(counts.get("queued", 0) + counts.get("retrying", 0))
        for status in RUN_STATUSES:
            m.runs.labels(status).set(counts.get(status, 0))
        m.workers.set(await store.live_workers())
        timings, request.app.state.last_step_attempt = await store.step_durations(
            getattr(request.app.state, "last_step_attempt", None), STEP_TIMINGS_PER_SCRAPE
        )
        for timing in timings:
            m.step_seconds.labels(timing.outcome).observe(timing.seconds)
    except StoreError:
        pass  # the request counters are still worth serving
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
