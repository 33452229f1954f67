"""Records → the JSON shapes of SPEC §3 (camelCase keys, ISO-8601 UTC times)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from hookline.payload_view import shown
from hookline.store.base import EventRecord, EventSummary, RunRecord, StepRecord
from hookline.web.responses import fragment_text, iso


def event_summary(e: EventSummary) -> dict[str, Any]:
    return {
        "id": e.id,
        "source": e.source,
        "eventId": e.provider_event_id,
        "type": e.type,
        "status": e.status,
        "receivedAt": iso(e.received_at),
    }


def step(s: StepRecord) -> dict[str, Any]:
    return {
        "name": s.name,
        "status": s.status,
        "result": s.result,
        "attempts": [
            {
                "number": a.number,
                "runId": a.run_id,
                "startedAt": iso(a.started_at),
                "endedAt": iso(a.ended_at),
                "outcome": a.outcome,
                "error": a.error,
                "traceback": a.traceback,
            }
            for a in s.attempts
        ],
    }


def run(r: RunRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "eventId": r.event_id,
        "handler": r.handler,
        "status": r.status,
        "attempts": r.attempts,
        "maxAttempts": r.max_attempts,
        "generation": r.generation,
        "result": r.result,
        "error": r.error,
        "nextAttemptAt": iso(r.available_at) if r.status in ("queued", "retrying") else None,
        "createdAt": iso(r.created_at),
        "updatedAt": iso(r.updated_at),
        "steps": [step(s) for s in r.steps],
    }


def event_detail(e: EventRecord) -> dict[str, Any]:
    # exactly what handlers get as Event.data, as JSON text, and the body when that is null
    # because it does not parse (hookline.payload_view)
    payload, body = shown(e.body, e.headers)
    return {
        **event_summary(e.summary),
        "headers": e.headers,
        "payload": payload,
        "body": body,
        "runs": [run(r) for r in e.runs],
    }


def redacted(shape: Any, redact: Callable[[str], str]) -> Any:
    """``shape`` with every configured secret replaced in its strings: header values, step
    and run results, errors, the payload. Text hookline did not choose shows no secret in
    the admin API and the CLI, as in the dashboard and the logs. Strings are redacted one
    by one, so the JSON stays valid whatever a secret looks like (``1234`` as a number).
    The payload (JSON text, ``orjson.Fragment``) is redacted as text when that leaves it
    valid JSON, else value by value."""
    if isinstance(shape, str):
        return redact(shape)
    if isinstance(shape, dict):
        return {key: redacted(value, redact) for key, value in shape.items()}
    if isinstance(shape, list):
        return [redacted(value, redact) for value in shape]
    if isinstance(shape, orjson.Fragment):
        return _redacted_fragment(shape, redact)
    return shape


def _redacted_fragment(fragment: orjson.Fragment, redact: Callable[[str], str]) -> Any:
    text = fragment_text(fragment)
    clean = redact(text)
    if clean == text:
        return fragment
    try:
        json.loads(clean)
    except ValueError:  # a secret stood where only a value of its own can (a bare number)
        return redacted(json.loads(text), redact)
    return orjson.Fragment(clean)
