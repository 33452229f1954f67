"""The ASGI application: webhooks on a lean path, everything else through Starlette."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from hookline.config import Settings
from hookline.errors import StoreError
from hookline.ingest import Ingestor
from hookline.jobs import Jobs
from hookline.metrics import Metrics
from hookline.pipeline import Registry
from hookline.redaction import Redactor
from hookline.scheduler import Scheduler
from hookline.schedules import Schedules
from hookline.store.base import Store
from hookline.web import (
    admin_api,
    admin_schedules,
    dashboard,
    dashboard_schedules,
    jobs_openapi,
    openapi,
    ops,
)
from hookline.web.admin_api import BadRequest
from hookline.web.auth import AdminGuard
from hookline.web.jobs import PREFIX as JOBS_PREFIX
from hookline.web.jobs import JobsGateway
from hookline.web.limits import RETRY_AFTER_SECONDS, BufferBudget
from hookline.web.lockout import limiter_for
from hookline.web.redirects import NoHostInRedirects
from hookline.web.responses import error
from hookline.web.session import Sessions
from hookline.web.webhooks import PREFIX, WebhookEndpoint, _send_json

log = logging.getLogger("hookline.http")


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return error(exc.status, exc.code, exc.detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error(
        exc.status_code,
        codes.get(exc.status_code, "http_error"),
        str(exc.detail),
        headers=dict(exc.headers or {}),
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return error(500, "internal_error", "unexpected error; see the server log")


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    log.error("store failed", extra={"path": request.url.path, "error": str(exc)})
    return error(503, "storage_unavailable", "the store is unavailable; try again later",
                 headers={"retry-after": "1"})  # fmt: skip


EXCEPTION_HANDLERS: Any = {
    BadRequest: _bad_request,
    HTTPException: _http_error,
    StoreError: _storage_unavailable,
    sqlite3.Error: _storage_unavailable,  # raised by the SQLite reader connection
    Exception: _server_error,
}


def static_directory() -> Path:
    """The dashboard's assets. Resolved to their real folder: an editable install links
    each file, and StaticFiles rightly refuses to follow links out of its directory."""
    return (
        Path(str(resources.files("hookline").joinpath("static", "dashboard.css"))).resolve().parent
    )


class RequestLog:
    """One log line per non-webhook request (webhooks log their own, with the outcome)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def tracking_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, tracking_send)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"][:200],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )


class HooklineApp:
    """Routes ``/webhooks/*`` and ``/jobs/*`` straight to their endpoints (each logs its own
    line), the rest to Starlette."""

    def __init__(
        self, webhooks: WebhookEndpoint, rest: Starlette, jobs: JobsGateway, public_url: str = ""
    ) -> None:
        self.webhooks = webhooks
        self.jobs = jobs
        self.rest = rest
        self.logged_rest = RequestLog(NoHostInRedirects(rest, public_url))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await (self.rest if scope["type"] == "lifespan" else self.logged_rest)(
                scope, receive, send
            )
            return
        try:
            if scope["path"].startswith(PREFIX):
                await self.webhooks(scope, receive, send)
            elif scope["path"].startswith(JOBS_PREFIX):
                await self.jobs(scope, receive, send)
            else:
                await self.logged_rest(scope, receive, send)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running once graceful_timeout_seconds is over
            # (a body still arriving): 503 with Retry-After, not its text/plain 500
            if not await _answer_stopping(send):
                raise  # the answer had begun: uvicorn closes the connection
            log.warning("request cut short by shutdown", extra={"path": scope["path"][:200]})


async def _answer_stopping(send: Send) -> bool:
    """Answer 503 ``shutting_down``; False if an answer was already under way."""
    answer = {"error": "shutting_down", "detail": "the server is stopping; try again"}
    head = [(b"connection", b"close"), (b"retry-after", b"%d" % RETRY_AFTER_SECONDS)]
    try:
        await _send_json(send, 503, answer, head)
    except RuntimeError:  # uvicorn: "Unexpected ASGI message 'http.response.start' sent"
        return False
    return True


def create_app(
    settings: Settings,
    store: Store,
    registry: Registry,
    metrics: Metrics | None = None,
    own_store: bool = True,
    run_scheduler: bool = True,
    http_process: int = 0,
) -> HooklineApp:
    """Build the app. With ``own_store`` its lifespan opens, migrates and closes the store;
    with ``run_scheduler`` it runs the scheduler of ``[[schedules]]`` meanwhile. Only HTTP
    process 0 of a ``serve`` migrates and runs the scheduler; the others just serve."""
    metrics = metrics or Metrics()
    metrics.gauges.http_process = http_process
    first = http_process == 0

    jobs = Jobs(settings, store, registry)
    schedules = Schedules(settings, store, jobs)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own_store:
            await store.open()
            if first:  # the other HTTP processes start after process 0 has migrated
                await store.migrate()
                await sessions.forget_other_tokens()
        ticking: asyncio.Task[None] | None = None
        if run_scheduler and first and settings.schedules:
            # After the migrations; every serve ticks (the store keeps one job per tick), so
            # losing any one serve loses no tick. Within a serve, process 0 ticks.
            ticking = asyncio.create_task(Scheduler(schedules, store).run(), name="scheduler")
        try:
            yield
        finally:
            if ticking is not None:
                ticking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticking  # bounded: cancellation ends every wait in it
            if own_store:
                await store.close()  # flushes the group-commit writer

    admin = Starlette(
        routes=[
            *admin_api.routes,
            *admin_schedules.routes,
            *openapi.routes,
            *dashboard.routes,
            *dashboard_schedules.routes,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    admin.state.store = store
    admin.state.settings = settings
    admin.state.redact = Redactor(settings.secret_values())  # the dashboard shows no secret
    admin.state.registry = registry
    admin.state.schedules = schedules
    admin.state.sessions = sessions = Sessions(settings.admin.token, store)
    admin.state.login_limiter = limiter = limiter_for(
        settings.admin.max_failed_logins, settings.admin.failed_login_window_seconds
    )
    session_ok, unauthorized = dashboard.guard_hooks(sessions)
    guard = AdminGuard(
        admin,
        settings.admin.token,
        limiter,
        open_paths=frozenset({dashboard.LOGIN_PATH}),
        session_ok=session_ok,
        unauthorized=unauthorized,
    )
    rest = Starlette(
        routes=[
            *ops.routes,
            Mount("/admin", app=guard),
            # dashboard assets: public (CSS, JS, an icon), outside the session cookie's path
            Mount("/static", app=StaticFiles(directory=static_directory())),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    rest.state.store = store
    rest.state.metrics = metrics
    rest.state.settings = settings
    rest.state.registry = registry
    ingestor = Ingestor(settings, store, registry)
    budget = BufferBudget(settings.server.max_buffered_bytes)
    gateway = JobsGateway(
        jobs,
        settings.api.keys,
        settings.server.max_body_bytes,
        metrics,
        functools.cache(lambda: jobs_openapi.document(registry)),  # built once, on first use
        budget,
    )
    webhooks = WebhookEndpoint(ingestor, metrics, settings.server.max_body_bytes, budget)
    return HooklineApp(webhooks, rest, gateway, settings.server.public_url)
