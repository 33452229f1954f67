"""Records → the JSON shapes of SPEC §3 (camelCase keys, ISO-8601 UTC times)."""

from __future__ import annotations

from typing import Any

from hookline.payload_view import payload_fragment
from hookline.store.base import EventRecord, EventSummary, RunRecord, StepRecord
from hookline.web.responses import iso


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
    return {
        **event_summary(e.summary),
        "headers": e.headers,
        # exactly what handlers get as Event.data, as JSON text (hookline.payload_view)
        "payload": payload_fragment(e.body, e.headers),
        "runs": [run(r) for r in e.runs],
    }
