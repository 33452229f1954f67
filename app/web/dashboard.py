"""The dashboard (SPEC §3): server-rendered HTML under ``/admin``, no build step.

Pages (all behind ``AdminGuard``; a dashboard path without a session or token
answers 401 with the login form):

    GET  /admin/                          events, filters, newest first, cursor pages
    GET  /admin/ui/failed                 failed events (the dead letter queue)
    GET  /admin/ui/events/{id}            one event: payload, headers, run timeline
    GET  /admin/ui/rows?...               fragment: the event table (polled every 2 s)
    GET  /admin/ui/events/{id}/live       fragment: status and runs (polled every 2 s)
    POST /admin/ui/events/{id}/redeliver  form: mode=resume|fresh
    POST /admin/ui/runs/{id}/cancel       form
    POST /admin/ui/failed/redeliver       form: every failed event matching the filter
    GET  /admin/login, POST /admin/login  the only open paths
    POST /admin/logout                    form

Every POST form carries the session's CSRF token (403 without it). Assets are
served by hookline at ``/static/`` (public: CSS, JS, an icon; nothing secret).
Templates autoescape; user data is never marked safe.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from hookline.config import Settings
from hookline.errors import RedeliveryInProgress
from hookline.payload_view import PAGE_MAX_BYTES, page_view
from hookline.store.base import ACTIVE_RUN_STATUSES, EVENT_STATUSES, EventFilter, EventRecord, Store
from hookline.web.admin_api import (
    BadRequest,
    cancel,
    decode_cursor,
    encode_cursor,
    event_filter,
    parse_mode,
)
from hookline.web.auth import token_matches
from hookline.web.lockout import Limiter, client_of
from hookline.web.session import Session, Sessions

if TYPE_CHECKING:
    from jinja2 import Environment
from hookline.web.timeline import timeline

PREFIX = "/admin"
LOGIN_PATH = f"{PREFIX}/login"
PAGE_SIZE = 50
MAX_FORM_BYTES = 16_384

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
_NEXT = re.compile(r"/admin/(?!login|logout)[A-Za-z0-9_\-./?=&%+]*")
_FILTER_KEYS = ("source", "type", "status", "q")


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _duration(started: float, ended: float | None) -> str:
    if ended is None:
        return "running"
    seconds = max(0.0, ended - started)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@functools.cache
def templates() -> Environment:
    """Built on the first dashboard page: jinja2 costs each HTTP process about 8 MB, and
    most of them never render a page."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("hookline", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, iso=_iso, pretty=_pretty)
    env.globals.update(duration=_duration, active_statuses=ACTIVE_RUN_STATUSES)
    return env


def html(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = templates().get_template(name).render(**context)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def message(status: int, title: str, text: str, session: Session | None) -> HTMLResponse:
    return html("message.html", status=status, title=title, text=text, session=session)


# -- authentication -----------------------------------------------------------------------------


def is_dashboard_path(path: str) -> bool:
    return path in (f"{PREFIX}/", f"{PREFIX}/logout") or path.startswith(f"{PREFIX}/ui/")


def safe_next(value: str | None) -> str:
    if value and _NEXT.fullmatch(value) and "//" not in value and ".." not in value:
        return value
    return f"{PREFIX}/"


def login_page(next_url: str, *, status: int, message: str = "", enabled: bool = True) -> Response:
    response = html(
        "login.html",
        status=status,
        next_url=safe_next(next_url),
        message=message,
        enabled=enabled,
        session=None,
    )
    if status == 401:
        response.headers["www-authenticate"] = "Bearer"
    return response


def guard_hooks(
    sessions: Sessions,
) -> tuple[Callable[[Scope], Awaitable[bool]], Callable[[Scope], Response | None]]:
    """``session_ok`` and ``unauthorized`` for ``AdminGuard``: a session cookie opens the
    dashboard pages only (never the JSON API), and those pages answer 401 with the form."""

    async def session_ok(scope: Scope) -> bool:
        return is_dashboard_path(scope["path"]) and await sessions.of(Request(scope)) is not None

    def unauthorized(scope: Scope) -> Response | None:
        path = scope["path"]
        if not is_dashboard_path(path):
            return None
        query = scope.get("query_string", b"").decode("latin-1")
        page = scope["method"] == "GET" and "/live" not in path and "/ui/rows" not in path
        next_url = (path + (f"?{query}" if query else "")) if page else f"{PREFIX}/"
        return login_page(next_url, status=401, enabled=sessions.enabled)

    return session_ok, unauthorized


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (first value of each field); anything else reads as empty."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest("form too large", status=413, code="payload_too_large")
    try:
        fields = parse_qs(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=32
        )
    except ValueError:  # more fields than any dashboard form has
        raise BadRequest("too many form fields") from None
    return {key: values[0] for key, values in fields.items()}


async def checked_form(request: Request) -> tuple[dict[str, str], Session] | Response:
    """The form of a state-changing POST, or the 403 answer when its CSRF token is wrong or
    the browser says it came from another site (``Sec-Fetch-Site``, which a page cannot
    forge: a second line behind the per-session token and the SameSite=Strict cookie)."""
    form = await read_form(request)
    session = await _sessions(request).of(request)
    cross_site = request.headers.get("sec-fetch-site", "") == "cross-site"
    if cross_site or session is None or not Sessions.csrf_ok(session, form.get("csrf")):
        text = "This form has expired or did not come from the dashboard. Reload and retry."
        return message(403, "Forbidden", text, session)
    return form, session


async def login_form(request: Request) -> Response:
    sessions = _sessions(request)
    return login_page(
        request.query_params.get("next", ""),
        status=200,
        enabled=sessions.enabled,
        message="" if sessions.enabled else "No admin token is configured.",
    )


async def login(request: Request) -> Response:
    form = await read_form(request)
    sessions = _sessions(request)
    settings: Settings = request.app.state.settings
    limiter: Limiter = request.app.state.login_limiter
    client = client_of(request.scope)
    wait = limiter.retry_after(client)
    if wait is not None:  # locked out: not even the right token gets in
        page = login_page(
            form.get("next", ""),
            status=429,
            message=f"Too many wrong admin tokens from this address. Try again in {wait} s.",
            enabled=sessions.enabled,
        )
        page.headers["retry-after"] = str(wait)
        return page
    if not token_matches(form.get("token", ""), settings.admin.token):
        limiter.failed(client)
        message = "Wrong admin token." if sessions.enabled else "No admin token is configured."
        return login_page(
            form.get("next", ""), status=401, message=message, enabled=sessions.enabled
        )
    limiter.succeeded(client)
    cookie, _ = await sessions.new()
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    sessions.set_cookie(response, cookie, secure=_https(request))
    return response


async def logout(request: Request) -> Response:
    checked = await checked_form(request)
    if isinstance(checked, Response):
        return checked
    await _sessions(request).end(checked[1])
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    Sessions.clear_cookie(response, secure=_https(request))
    return response


# -- event list ---------------------------------------------------------------------------------


def _list_query(request: Request, failed: bool) -> tuple[dict[str, str], EventFilter, int | None]:
    filters = {k: request.query_params.get(k, "").strip() for k in _FILTER_KEYS}
    if failed:
        filters["status"] = "failed"
    flt = event_filter(dict(filters))
    cursor = request.query_params.get("cursor", "")
    return filters, flt, decode_cursor(cursor) if cursor else None


async def _list_context(request: Request, failed: bool) -> tuple[dict[str, Any], int]:
    error = ""
    try:
        filters, flt, before = _list_query(request, failed)
    except BadRequest as exc:
        error, before = exc.detail, None
        filters = {k: "failed" if failed and k == "status" else "" for k in _FILTER_KEYS}
        flt = EventFilter(status="failed" if failed else None)
    items = await _store(request).list_events(flt, PAGE_SIZE + 1, before)
    page = items[:PAGE_SIZE]
    # the query that reproduces this page (the failed view fixes the status itself)
    active = {k: v for k, v in filters.items() if v and not (failed and k == "status")}
    base = f"{PREFIX}/ui/failed" if failed else f"{PREFIX}/"
    next_url = first_url = None
    if len(items) > PAGE_SIZE:
        next_url = f"{base}?{urlencode({**active, 'cursor': encode_cursor(page[-1].seq)})}"
    if before is not None:
        first_url = f"{base}?{urlencode(active)}" if active else base
    here = {**active, **({"cursor": request.query_params["cursor"]} if before is not None else {})}
    poll = {**here, **({"view": "failed"} if failed else {})}
    context = {
        "failed_view": failed,
        "filters": filters,
        "statuses": EVENT_STATUSES,
        "sources": [s.name for s in request.app.state.settings.sources]
        + (["jobs"] if request.app.state.registry.jobs else []),  # jobs: source "jobs"
        "events": page,
        "next_url": next_url,
        "first_url": first_url,
        "poll_url": f"{PREFIX}/ui/rows?{urlencode(poll)}",
        "error": error,
        "redelivered": None,
        "session": await _sessions(request).of(request),
    }
    return context, 400 if error else 200


async def events_page(request: Request) -> Response:
    context, status = await _list_context(request, failed=False)
    return html("events.html", status=status, **context)


async def failed_page(request: Request) -> Response:
    context, status = await _list_context(request, failed=True)
    done = request.query_params.get("redelivered", "")
    context["redelivered"] = int(done) if done.isdecimal() and len(done) < 10 else None
    return html("events.html", status=status, **context)


async def rows_fragment(request: Request) -> Response:
    failed = request.query_params.get("view") == "failed"
    context, status = await _list_context(request, failed=failed)
    return html("_list.html", status=status, **context)


async def redeliver_failed(request: Request) -> Response:
    checked = await checked_form(request)
    if isinstance(checked, Response):
        return checked
    form, _ = checked
    try:
        flt = event_filter({"source": form.get("source"), "type": form.get("type")})
        mode = parse_mode(form.get("mode") or None)
    except BadRequest as exc:
        return message(400, "Bad request", exc.detail, await _sessions(request).of(request))
    flt = EventFilter(source=flt.source, type_glob=flt.type_glob, status="failed")
    count = await _store(request).redeliver_matching(flt, mode)
    keep = {k: v for k in ("source", "type") if (v := form.get(k, "").strip())}
    query = urlencode({**keep, "redelivered": count})
    return RedirectResponse(f"{PREFIX}/ui/failed?{query}", status_code=303)


# -- one event ----------------------------------------------------------------------------------


async def _event_or_404(request: Request) -> EventRecord | Response:
    record = await _store(request).get_event(request.path_params["event_id"])
    if record is None:
        return message(
            404, "Not found", "No event with this id.", await _sessions(request).of(request)
        )
    return record


async def _event_context(request: Request, record: EventRecord) -> dict[str, Any]:
    event_id = record.summary.id
    return {
        "redact": request.app.state.redact,
        "event": record.summary,
        "runs": timeline(record.runs),
        "live_url": f"{PREFIX}/ui/events/{event_id}/live",
        "session": await _sessions(request).of(request),
    }


async def event_page(request: Request) -> Response:
    record = await _event_or_404(request)
    if isinstance(record, Response):
        return record
    view = page_view(record.body, record.headers)
    done = request.query_params.get("done", "")
    redact = request.app.state.redact
    return html(
        "event.html",
        **await _event_context(request, record),
        headers=sorted((name, redact(value)) for name, value in record.headers.items()),
        payload=redact(view.text),
        payload_kind=view.kind,
        payload_size=view.size,
        payload_shown=PAGE_MAX_BYTES,
        done=done if done in ("resume", "fresh", "cancelled") else "",
    )


async def live_fragment(request: Request) -> Response:
    record = await _event_or_404(request)
    if isinstance(record, Response):
        return record
    return html("_live.html", **await _event_context(request, record))


async def redeliver_event(request: Request) -> Response:
    checked = await checked_form(request)
    if isinstance(checked, Response):
        return checked
    form, session = checked
    event_id = request.path_params["event_id"]
    try:
        mode = parse_mode(form.get("mode") or None)
    except BadRequest as exc:
        return message(400, "Bad request", exc.detail, session)
    try:
        run_ids = await _store(request).redeliver(event_id, mode)
    except RedeliveryInProgress as exc:
        text = str(exc)
        return message(409, "Not redelivered", text[0].upper() + text[1:] + ".", session)
    if run_ids is None:
        return message(404, "Not found", "No event with this id.", session)
    return RedirectResponse(f"{PREFIX}/ui/events/{event_id}?done={mode}", status_code=303)


async def cancel_run(request: Request) -> Response:
    checked = await checked_form(request)
    if isinstance(checked, Response):
        return checked
    _, session = checked
    run = await cancel(_store(request), request.path_params["run_id"])
    if run is None:
        return message(404, "Not found", "No run with this id.", session)
    if isinstance(run, str):
        return message(409, "Not cancelled", run[0].upper() + run[1:] + ".", session)
    return RedirectResponse(f"{PREFIX}/ui/events/{run.event_id}?done=cancelled", status_code=303)


routes = [
    Route("/", events_page, methods=["GET"]),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/ui/rows", rows_fragment, methods=["GET"]),
    Route("/ui/failed", failed_page, methods=["GET"]),
    Route("/ui/failed/redeliver", redeliver_failed, methods=["POST"]),
    Route("/ui/events/{event_id}", event_page, methods=["GET"]),
    Route("/ui/events/{event_id}/live", live_fragment, methods=["GET"]),
    Route("/ui/events/{event_id}/redeliver", redeliver_event, methods=["POST"]),
    Route("/ui/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
]
