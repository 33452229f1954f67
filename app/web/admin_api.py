"""The admin JSON API (SPEC §3): thin routes over the store.

Authentication is not done here: the ``/admin`` mount is wrapped by
``hookline.web.auth.AdminGuard`` so no route can be left open by mistake.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hookline.errors import RedeliveryInProgress
from hookline.store.base import (
    ACTIVE_RUN_STATUSES,
    EVENT_STATUSES,
    EventFilter,
    RedeliveryMode,
    RunRecord,
    Store,
)
from hookline.web import shapes
from hookline.web.responses import JSON, error

MAX_LIMIT = 500
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only; str.isdigit() also accepts "²"


#: The admin API's JSON bodies are a mode or a filter: a few hundred bytes.
MAX_JSON_BYTES = 65_536


class BadRequest(Exception):
    def __init__(self, detail: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith("s") and _DIGITS.fullmatch(raw[1:]):  # fits a 64-bit INTEGER
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadRequest("cursor is not one this API returned")


_GREGORIAN_CYCLE_SECONDS = 146_097 * 86_400  # 400 years
# RFC 3339 ``date-time`` (the OpenAPI format of since/until), letters in either case; also
# what else ISO-8601 writes for an instant: no zone (UTC, as every time hookline shows),
# no seconds, a space for the T, or a date alone (its midnight, UTC)
_ISO_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[Tt ]([0-9]{2}:[0-9]{2})(?::([0-9]{2})(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?"
)


def parse_time(value: str, name: str) -> float:
    """An ISO-8601 time: RFC 3339 (a leap second included), or without a zone (UTC)."""
    match = _ISO_TIME.fullmatch(value)
    if match is None:
        raise BadRequest(f"{name} must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z")
    day, minutes, seconds, fraction, zone = match.groups()
    minutes, seconds, zone = minutes or "00:00", seconds or "00", zone or "Z"
    shift = 0.0
    if day.startswith("0000"):  # year 0 is valid RFC 3339; Python starts at 1
        day, shift = "0400" + day[4:], -_GREGORIAN_CYCLE_SECONDS
    leap = seconds == "60"
    zone = "+00:00" if zone in ("Z", "z") else zone
    text = f"{day}T{minutes}:{'59' if leap else seconds}{(fraction or '')[:7]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} is not a valid time") from None
    return parsed.timestamp() + shift + (1.0 if leap else 0.0)


def event_filter(params: dict[str, Any]) -> EventFilter:
    def text(name: str) -> str | None:
        value = params.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > 500 or "\x00" in value:
            raise BadRequest(f"{name} must be a string of at most 500 characters, without NUL")
        return value

    status = text("status")
    if status is not None and status not in EVENT_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(EVENT_STATUSES)}")
    since, until = text("since"), text("until")
    return EventFilter(
        source=text("source"),
        type_glob=text("type"),
        status=status,
        since=parse_time(since, "since") if since else None,
        until=parse_time(until, "until") if until else None,
        search=text("q"),
    )


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return 50
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def parse_mode(value: Any) -> RedeliveryMode:
    if value in (None, "resume"):
        return "resume"
    if value == "fresh":
        return "fresh"
    raise BadRequest("mode must be 'resume' or 'fresh'")


async def json_object(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():  # bounded: never the whole of a huge body in memory
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            detail = f"body exceeds {MAX_JSON_BYTES} bytes"
            raise BadRequest(detail, status=413, code="payload_too_large")
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


async def list_events(request: Request) -> Response:
    params = dict(request.query_params)
    flt = event_filter(params)
    limit = parse_limit(params.get("limit"))
    cursor = params.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    items = await _store(request).list_events(flt, limit + 1, before)
    page = items[:limit]
    next_cursor = encode_cursor(page[-1].seq) if len(items) > limit else None
    return JSON({"items": [shapes.event_summary(e) for e in page], "nextCursor": next_cursor})


async def get_event(request: Request) -> Response:
    record = await _store(request).get_event(request.path_params["event_id"])
    if record is None:
        return error(404, "not_found", "no event with this id")
    return JSON(shapes.redacted(shapes.event_detail(record), request.app.state.redact))


async def redeliver_event(request: Request) -> Response:
    mode = parse_mode((await json_object(request)).get("mode"))
    try:
        run_ids = await _store(request).redeliver(request.path_params["event_id"], mode)
    except RedeliveryInProgress as exc:
        return JSON(
            {"error": "redelivery_in_progress", "detail": str(exc), "runIds": exc.run_ids},
            status_code=409,
        )
    if run_ids is None:
        return error(404, "not_found", "no event with this id")
    return JSON({"runIds": run_ids}, status_code=202)


async def redeliver_matching(request: Request) -> Response:
    body = await json_object(request)
    unknown = set(body) - {"source", "type", "status", "since", "until", "mode"}
    if unknown:
        raise BadRequest(f"unknown filter field(s): {', '.join(sorted(unknown))}")
    mode = parse_mode(body.get("mode"))
    count = await _store(request).redeliver_matching(event_filter(body), mode)
    return JSON({"count": count}, status_code=202)


async def get_run(request: Request) -> Response:
    run = await _store(request).get_run(request.path_params["run_id"])
    if run is None:
        return error(404, "not_found", "no run with this id")
    return JSON(shapes.redacted(shapes.run(run), request.app.state.redact))


def cannot_cancel(run: RunRecord) -> str:
    return (
        f"run {run.id} has already {'been cancelled' if run.status == 'cancelled' else run.status}"
        "; only a queued, running or retrying run can be cancelled"
    )


async def cancel(store: Store, run_id: str) -> RunRecord | str | None:
    """The cancelled run; the 409 detail when it had already ended; None: no such run."""
    run = await store.get_run(run_id)
    if run is None:
        return None
    if run.status not in ACTIVE_RUN_STATUSES:
        return cannot_cancel(run)
    cancelled = await store.cancel_run(run_id)
    if cancelled is None:  # pruned meanwhile
        return None
    if cancelled.status != "cancelled":  # it ended between the read and the update
        return cannot_cancel(cancelled)
    return cancelled


async def cancel_run(request: Request) -> Response:
    result = await cancel(_store(request), request.path_params["run_id"])
    if result is None:
        return error(404, "not_found", "no run with this id")
    if isinstance(result, str):
        return error(409, "run_finished", result)
    return JSON(shapes.redacted(shapes.run(result), request.app.state.redact))


routes = [
    Route("/events", list_events, methods=["GET"]),
    Route("/events/{event_id}", get_event, methods=["GET"]),
    Route("/events/{event_id}/redeliver", redeliver_event, methods=["POST"]),
    Route("/redeliver", redeliver_matching, methods=["POST"]),
    Route("/runs/{run_id}", get_run, methods=["GET"]),
    Route("/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
]
