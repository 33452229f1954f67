"""The OpenAPI 3.1 description of the admin JSON API, served at ``/admin/openapi.json``.

Written by hand to match ``admin_api`` and ``shapes``; ``tests/e2e/test_openapi.py``
fuzzes a live server with schemathesis against it, so a drift fails the suite.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hookline.store.base import EVENT_STATUSES, RUN_STATUSES, TICK_OUTCOMES
from hookline.web.admin_api import MAX_LIMIT
from hookline.web.responses import JSON

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _unset_or(schema: Schema) -> Schema:
    """A filter value that may also be null or the empty string (both mean: no filter)."""
    return {"anyOf": [schema, {"type": "null"}, {"const": ""}]}


_TIME: Schema = {"type": "string", "format": "date-time"}
_ANY: Schema = {"description": "Any JSON value."}
_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$"}
_FILTER_TEXT: Schema = {"type": "string", "maxLength": 500, "pattern": "^[^\\x00]*$"}
_MODE: Schema = {
    "type": "string",
    "enum": ["resume", "fresh"],
    "default": "resume",
    "description": "`resume` reuses every step that already succeeded; `fresh` runs all again.",
}


def _obj(properties: dict[str, Schema], description: str = "") -> Schema:
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


_SUMMARY: dict[str, Schema] = {
    "id": {"type": "string", "description": "hookline's event id."},
    "source": {"type": "string", "description": "The configured source name."},
    "eventId": {"type": "string", "description": "The provider's event id."},
    "type": {"type": "string"},
    "status": _ref("EventStatus"),
    "receivedAt": _TIME,
}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        {
            "error": {"type": "string", "description": "A stable code, e.g. `not_found`."},
            "detail": {"type": "string", "description": "Human-readable text."},
        },
        "Every error answer.",
    ),
    "EventStatus": {
        "type": "string",
        "enum": list(EVENT_STATUSES),
        "description": "Derived from the event's runs; `unhandled` when no handler matched.",
    },
    "RunStatus": {"type": "string", "enum": list(RUN_STATUSES)},
    "EventSummary": _obj(_SUMMARY),
    "EventList": _obj(
        {
            "items": {"type": "array", "items": _ref("EventSummary")},
            "nextCursor": _nullable(
                {"type": "string", "description": "Pass as `cursor` for the next page."}
            ),
        },
        "One page of events, newest first.",
    ),
    "Attempt": _obj(
        {
            "number": {
                "type": "integer",
                "minimum": 1,
                "description": "Counts this step's attempts across the runs of its generation.",
            },
            "runId": _nullable({"type": "string", "description": "The run that made it."}),
            "startedAt": _TIME,
            "endedAt": _nullable(_TIME),
            "outcome": {"type": "string", "enum": ["succeeded", "failed"]},
            "error": _nullable({"type": "string"}),
            "traceback": _nullable({"type": "string"}),
        },
        "One call of a step's function.",
    ),
    "Step": _obj(
        {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["succeeded", "failed"]},
            "result": {**_ANY, "description": "The stored JSON result (null until it succeeds)."},
            "attempts": {"type": "array", "items": _ref("Attempt")},
        }
    ),
    "Run": _obj(
        {
            "id": {"type": "string"},
            "eventId": {"type": "string", "description": "hookline's id of the run's event."},
            "handler": {"type": "string"},
            "status": _ref("RunStatus"),
            "attempts": {"type": "integer", "minimum": 0},
            "maxAttempts": {"type": "integer", "minimum": 1},
            "generation": {
                "type": "integer",
                "minimum": 0,
                "description": "Bumped by a `fresh` redelivery; steps are memoized per generation.",
            },
            "result": {**_ANY, "description": "The handler's return value once it succeeded."},
            "error": _nullable({"type": "string"}),
            "nextAttemptAt": _nullable(
                {**_TIME, "description": "When a queued or retrying run is due."}
            ),
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "steps": {"type": "array", "items": _ref("Step")},
        }
    ),
    "EventDetail": _obj(
        {
            **_SUMMARY,
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "The request headers, signature headers redacted.",
            },
            "payload": {
                **_ANY,
                "description": (
                    "The body as handlers get it in `event.data`: parsed JSON, or for an "
                    "`application/x-www-form-urlencoded` body the form (a lone `payload` "
                    "field holding JSON: that JSON); null when it does not parse."
                ),
            },
            "body": {
                "type": ["string", "null"],
                "description": (
                    "The body as text when it does not parse (an `hmac` source may send text "
                    "or XML; bytes that are not UTF-8 as U+FFFD); null when `payload` shows it."
                ),
            },
            "runs": {"type": "array", "items": _ref("Run")},
        },
        "An event summary plus headers, payload and runs.",
    ),
    "RedeliverRequest": {
        "type": "object",
        "properties": {"mode": _nullable(_MODE)},
        "description": "May be omitted entirely (mode `resume`).",
    },
    "RedeliverResult": _obj(
        {"runIds": {"type": "array", "items": {"type": "string"}}},
        "The new runs (and any run of the event still in progress).",
    ),
    "RedeliverFilter": {
        "type": "object",
        "properties": {
            "source": _nullable(_FILTER_TEXT),
            "type": _nullable({**_FILTER_TEXT, "description": "Glob: `*` matches any text."}),
            "status": _unset_or(_ref("EventStatus")),
            "since": _unset_or({**_TIME, "description": "Received at or after."}),
            "until": _unset_or({**_TIME, "description": "Received before."}),
            "mode": _nullable(_MODE),
        },
        "additionalProperties": False,
        "description": (
            "Every field is optional (null or an empty string: not given); "
            "an empty filter matches every event."
        ),
    },
    "RedeliverCount": _obj({"count": {"type": "integer", "minimum": 0}}),
    "RedeliveryInProgress": _obj(
        {
            "error": {"const": "redelivery_in_progress"},
            "detail": {"type": "string"},
            "runIds": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The event's runs still queued, running or retrying.",
            },
        },
        "A `fresh` redelivery was refused (nothing created) while runs of the event are active.",
    ),
    "ScheduleTick": _obj(
        {
            "tickAt": _TIME,
            "outcome": {
                "type": "string",
                "enum": list(TICK_OUTCOMES),
                "description": (
                    "`fired`: its job was enqueued; `skipped_overlap`: the previous run was "
                    "still active (overlap `skip`); `missed`: nothing ran at the time; "
                    "`caught_up`: its job was enqueued after a downtime."
                ),
            },
            "jobId": _nullable({"type": "string", "description": "The job enqueued for it."}),
        }
    ),
    "Schedule": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "job": {"type": "string", "description": "The job enqueued at each tick."},
            "cron": {"type": "string", "description": "5 fields, or 6 with seconds first."},
            "every": {"type": "string", "description": "e.g. `30s`, aligned to the epoch."},
            "timezone": {"type": "string", "description": "IANA name; cron's wall clock."},
            "catchUp": {"type": "string", "enum": ["skip", "latest", "all"]},
            "overlap": {"type": "string", "enum": ["skip", "queue", "allow"]},
            "paused": {"type": "boolean"},
            "nextTickAt": _nullable({**_TIME, "description": "null while paused."}),
            "lastTicks": {
                "type": "array",
                "items": _ref("ScheduleTick"),
                "description": "The newest ticks, newest first.",
            },
        },
        "required": [
            "name",
            "job",
            "timezone",
            "catchUp",
            "overlap",
            "paused",
            "nextTickAt",
            "lastTicks",
        ],
        "oneOf": [{"required": ["cron"]}, {"required": ["every"]}],
        "additionalProperties": False,
        "description": "A configured schedule: `cron` or `every`, its state, its last ticks.",
    },
    "ScheduleList": _obj({"items": {"type": "array", "items": _ref("Schedule")}}),
    "Triggered": _obj(
        {"jobId": {"type": "string", "description": "The job enqueued now."}},
        "The schedule's job was enqueued, with `scheduledFor` = now.",
    ),
}


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(description: str, schema: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


RESPONSES: dict[str, Schema] = {
    "BadRequest": _error("Invalid parameters or body."),
    "Unauthorized": _error("Missing or wrong admin token."),
    "NotFound": _error("No such resource."),
    "TooManyFailedLogins": {
        **_error(
            "`too_many_failed_logins`: this client sent too many wrong admin tokens; every "
            "token is refused until `Retry-After` seconds have passed."
        ),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    "StorageUnavailable": {
        **_error("`storage_unavailable`: the database is unreachable or full; retry later."),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}
# answers any operation may give, added to each in ``document()``
_COMMON = {
    "429": {"$ref": "#/components/responses/TooManyFailedLogins"},
    "503": {"$ref": "#/components/responses/StorageUnavailable"},
}
_401 = {"$ref": "#/components/responses/Unauthorized"}
_400 = {"$ref": "#/components/responses/BadRequest"}
_404 = {"$ref": "#/components/responses/NotFound"}


def _path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": _ID,
        "description": description,
    }


_NAME_PARAM: Schema = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
    "description": "The schedule's name (`[[schedules]] name`).",
}


def _query(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter; an empty value means the same as leaving it out."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "schema": schema,
        "description": description,
    }


def _json_body(schema: str, required: bool) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


PATHS: dict[str, Schema] = {
    "/admin/events": {
        "get": {
            "operationId": "listEvents",
            "summary": "List events, newest first",
            "parameters": [
                _query("source", _FILTER_TEXT, "Only events of this source."),
                _query("type", _FILTER_TEXT, "Event type glob: `*` matches any text."),
                _query("status", _ref("EventStatus"), "Only events with this status."),
                _query("since", _TIME, "Received at or after this time (no zone: UTC)."),
                _query("until", _TIME, "Received before this time (no zone: UTC)."),
                _query("q", _FILTER_TEXT, "Text contained in the provider's event id."),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                    "Page size.",
                ),
                _query(
                    "cursor",
                    {"type": "string"},
                    "The `nextCursor` of the previous page (opaque; others answer 400).",
                ),
            ],
            "responses": {
                "200": _ok("A page of events.", "EventList"),
                "400": _400,
                "401": _401,
            },
        }
    },
    "/admin/events/{event_id}": {
        "get": {
            "operationId": "getEvent",
            "summary": "One event with its headers, payload and runs",
            "parameters": [_path_param("event_id", "hookline's event id.")],
            "responses": {
                "200": _ok("The event.", "EventDetail"),
                "401": _401,
                "404": _404,
            },
        }
    },
    "/admin/events/{event_id}/redeliver": {
        "post": {
            "operationId": "redeliverEvent",
            "summary": "Run the event's handlers again",
            "parameters": [_path_param("event_id", "hookline's event id.")],
            "requestBody": _json_body("RedeliverRequest", required=False),
            "description": (
                "`resume`: a handler whose newest run is still queued, running or retrying "
                "keeps that run (its id is returned). `fresh`: refused with 409 while any run "
                "of the event is still active."
            ),
            "responses": {
                "202": _ok("New runs are queued.", "RedeliverResult"),
                "400": _400,
                "401": _401,
                "404": _404,
                "409": _ok("A fresh redelivery while runs are active.", "RedeliveryInProgress"),
            },
        }
    },
    "/admin/redeliver": {
        "post": {
            "operationId": "redeliverMatching",
            "summary": "Redeliver every event that matches a filter",
            "requestBody": _json_body("RedeliverFilter", required=False),
            "responses": {
                "202": _ok("How many events matched.", "RedeliverCount"),
                "400": _400,
                "401": _401,
            },
        }
    },
    "/admin/runs/{run_id}": {
        "get": {
            "operationId": "getRun",
            "summary": "One run with its steps and their attempts",
            "parameters": [_path_param("run_id", "The run's id.")],
            "responses": {"200": _ok("The run.", "Run"), "401": _401, "404": _404},
        }
    },
    "/admin/runs/{run_id}/cancel": {
        "post": {
            "operationId": "cancelRun",
            "summary": "Cancel a queued, running or retrying run",
            "description": "A run that already ended is left as it is: 409 `run_finished`.",
            "parameters": [_path_param("run_id", "The run's id.")],
            "responses": {
                "200": _ok("The run, now cancelled.", "Run"),
                "401": _401,
                "404": _404,
                "409": _error("The run had already ended (`run_finished`)."),
            },
        }
    },
    "/admin/schedules": {
        "get": {
            "operationId": "listSchedules",
            "summary": "Every configured schedule with its state and last ticks",
            "responses": {"200": _ok("The schedules.", "ScheduleList"), "401": _401},
        }
    },
    **{
        f"/admin/schedules/{{name}}/{action}": {
            "post": {
                "operationId": f"{action}Schedule",
                "summary": summary,
                "parameters": [_NAME_PARAM],
                "responses": {
                    status: _ok(answer, schema),
                    "401": _401,
                    "404": _404,
                },
            }
        }
        for action, summary, status, answer, schema in (
            (
                "pause",
                "Stop a schedule ticking (kept across restarts)",
                "200",
                "The schedule, paused.",
                "Schedule",
            ),
            (
                "resume",
                "Let a paused schedule tick again (paused ticks are not caught up)",
                "200",
                "The schedule, ticking.",
                "Schedule",
            ),
            (
                "trigger",
                "Enqueue the schedule's job now, paused or not",
                "202",
                "The job is queued.",
                "Triggered",
            ),
        )
    },
    "/admin/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "The OpenAPI document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": _401,
            },
        }
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hookline admin API",
            "version": "1",
            "description": (
                "Inspect stored webhook events and their runs; redeliver and cancel; "
                "list, pause, resume and trigger schedules. "
                "Every call needs the admin token as a Bearer token. JSON field names are "
                "camelCase; times are ISO-8601 UTC."
            ),
        },
        "paths": {
            path: {
                method: {**op, "responses": {**op["responses"], **_COMMON}}
                for method, op in operations.items()
            }
            for path, operations in PATHS.items()
        },
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"adminToken": []}],
    }


async def openapi_json(request: Request) -> Response:
    return JSON(document())


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
