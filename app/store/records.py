"""Rows → records: the one place that knows the column order of the read queries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hookline.store.base import ClaimedRun, EventSummary, RunRecord, StepAttempt, StepRecord

Row = Sequence[Any]


def _json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def run_from_row(row: Row) -> RunRecord:
    return RunRecord(
        id=row[0],
        event_id=row[1],
        handler=row[2],
        generation=row[3],
        status=row[4],
        attempts=row[5],
        max_attempts=row[6],
        available_at=row[7],
        created_at=row[8],
        updated_at=row[9],
        result=_json(row[10]),
        error=row[11],
        concurrency_key=row[12],
    )


def claimed_from_row(row: Row) -> ClaimedRun:
    run = run_from_row(row[:13])
    event = EventSummary(
        id=run.event_id,
        source=row[13],
        provider_event_id=row[14],
        type=row[15],
        status=row[16],
        received_at=row[17],
        seq=row[18],
    )
    headers = row[19] if isinstance(row[19], dict) else json.loads(row[19])
    # the claim stamped the run's updated_at with the store's clock
    return ClaimedRun(
        run=run,
        event=event,
        headers=headers,
        body=bytes(row[20]),
        token=int(row[21]),
        claimed_at=float(run.updated_at),
        has_memo=bool(row[22]) if len(row) > 22 else True,
    )


def steps_from_rows(step_rows: Sequence[Row], attempt_rows: Sequence[Row]) -> list[StepRecord]:
    attempts: dict[str, list[StepAttempt]] = {}
    for name, number, started, ended, outcome, error, tb, run_id in attempt_rows:
        attempts.setdefault(name, []).append(
            StepAttempt(number, started, ended, outcome, error, tb, run_id)
        )
    return [
        StepRecord(name, position, status, _json(result), attempts.get(name, []))
        for name, position, status, result in step_rows
    ]
