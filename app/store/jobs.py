"""The job operations of the store, written once for both dialects (see ``program``).

``enqueue`` stores a job as an event of source ``jobs`` (its ``job`` column holding the key,
fingerprint and run time as JSON) plus its runs, in the caller's one transaction. Its
idempotency key becomes the event's provider event id (``"<job name>/<key>"``; a job
without a key uses its own id), so the events table's
``UNIQUE (source, provider_event_id)`` decides a race between requests with one key:
exactly one insert wins, on SQLite (one writer) and on PostgreSQL (the losers wait for the
winner's commit, then see its row) alike, and a loser has nothing to undo.

Due times are the store's (see ``hookline.store.base``): a job's runs are due its delay
(``run_at - created_at``, as the caller asked) after the store's clock — on PostgreSQL
``hookline_now()`` in the statements themselves, on SQLite the store's clock passed in as
``now``. ``run_at`` itself is kept for display (``runAt``).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from hookline.errors import StoreError
from hookline.ids import new_id
from hookline.store import records
from hookline.store.base import (
    JOB_SOURCE,
    EnqueueResult,
    EventStatus,
    EventSummary,
    JobRecord,
    NewJob,
    NewRun,
)
from hookline.store.program import Program, Sql

_MAX_TRIES = 3


def key_of(name: str, idempotency_key: str) -> str:
    """The provider event id of a keyed job (job names have no '/': unambiguous)."""
    return f"{name}/{idempotency_key}"


def _run_params(run: NewRun, job_id: str, generation: int, at: float, now: float) -> Sql:
    return Sql(
        "job_insert_run",
        {
            "id": run.id,
            "event_id": job_id,
            "handler": run.handler,
            "generation": generation,
            "max_attempts": run.max_attempts,
            "available_at": at,
            "concurrency_key": run.concurrency_key,
            "now": now,
        },
    )


def _notify(runs: Sequence[NewRun]) -> Sql:
    """Wake the workers that loaded these runs' handlers (PostgreSQL; SQLite workers poll)."""
    return Sql("job_notify", {"handlers": sorted({run.handler for run in runs})})


def _job_fields(job: NewJob) -> str:
    """The event's ``job`` column: what a job has beyond an event (its first run is a row of
    ``runs``, stored by the same transaction)."""
    return orjson.dumps(
        {"key": job.idempotency_key, "fingerprint": job.fingerprint, "runAt": job.run_at}
    ).decode()


def _fingerprint(job_column: str | None) -> str | None:
    fingerprint: str | None = orjson.loads(job_column).get("fingerprint") if job_column else None
    return fingerprint


def prepare(job: NewJob, now: float | None = None) -> Sql:
    """The job's ``job_insert``, built by the caller (on SQLite: on the event loop, so the
    writer thread only executes it; it holds the GIL as little as it can).

    ``now``: the store's clock on SQLite; None on PostgreSQL, whose statements read their
    own (``hookline_now()``): the runs are due ``run_at - created_at`` after it.
    """
    provider_event_id = key_of(job.name, job.idempotency_key) if job.idempotency_key else job.id
    clock = job.created_at if now is None else now
    return Sql(
        "job_insert",
        {
            # the events columns, in job_insert's order (SQLite's fast path binds them so)
            "id": job.id,
            "source": JOB_SOURCE,
            "provider_event_id": provider_event_id,
            "type": job.name,
            "status": "queued" if job.runs else "unhandled",
            "received_at": job.created_at,
            "headers": orjson.dumps(job.headers).decode(),
            "body": job.payload,
            "job": _job_fields(job),
            # the first run's fields (PostgreSQL's WITH; SQLite's job_insert_first_run)
            "run_id": job.runs[0].id if job.runs else None,
            "run_handler": job.runs[0].handler if job.runs else None,
            "run_max_attempts": job.runs[0].max_attempts if job.runs else None,
            "run_concurrency_key": job.runs[0].concurrency_key if job.runs else None,
            "run_at": job.run_at,
            "due_at": clock + max(0.0, job.run_at - job.created_at),  # by the store's clock
            "clock": clock,  # not a column: what the program's later statements count from
        },
    )


#: ``job_insert``'s columns, in its order (SQLite's ``job_insert_positional``)
INSERT_COLUMNS = (
    "id", "source", "provider_event_id", "type", "status", "received_at", "headers", "body",
    "job",
)  # fmt: skip


def enqueue(job: NewJob, insert: Sql) -> Program[EnqueueResult]:
    """Store ``job`` (``insert`` = ``prepare(job, now)``): see the module docstring."""
    provider_event_id = insert.params["provider_event_id"]
    clock: float = insert.params["clock"]
    due: float = insert.params["due_at"]
    status: EventStatus = "queued" if job.runs else "unhandled"
    for _ in range(_MAX_TRIES):
        if (yield insert):  # the event (and, on PostgreSQL, its first run)
            if job.runs:
                yield Sql("job_insert_first_run", insert.params)
            for run in job.runs[1:]:
                yield _run_params(run, job.id, 0, due, clock)
            if job.runs:
                yield _notify(job.runs)
            return EnqueueResult(job.id, "created", status, tuple(r.id for r in job.runs))
        # The key is taken. PostgreSQL: lock the job's event, so two requests cannot both
        # resume it (SQLite: the writer holds the file's write lock already).
        found = yield Sql("job_lock_by_key", {"provider_event_id": provider_event_id})
        if not found:
            continue  # pruned between our insert and this read: insert again
        existing, status, job_column = found[0]
        if _fingerprint(job_column) != job.fingerprint:
            return EnqueueResult(existing, "key_reused", status)
        if status != "failed":
            return EnqueueResult(existing, "replayed", status)
        return (yield from _resume(existing, clock))
    raise StoreError(f"job {job.name!r}: its key kept vanishing while it was stored")


def _resume(job_id: str, now: float) -> Program[EnqueueResult]:
    """New runs, same generation (succeeded steps are reused), if every latest run failed:
    what a provider's resend of a failed event does."""
    latest = yield Sql("job_latest_runs", {"event_id": job_id})
    if not latest or any(row[3] != "failed" for row in latest):
        return EnqueueResult(job_id, "replayed", "failed")
    run_ids = []
    for _run_id, handler, generation, _status, max_attempts, key in latest:
        run = NewRun(new_id("run"), handler, max_attempts, key)
        yield _run_params(run, job_id, generation, now, now)
        run_ids.append(run.id)
    yield Sql("job_refresh_status", {"id": job_id})
    yield Sql("job_notify", {"handlers": sorted({row[1] for row in latest})})
    return EnqueueResult(job_id, "resumed", "queued", tuple(run_ids))


def get(job_id: str) -> Program[JobRecord | None]:
    found = yield Sql("job_by_id", {"id": job_id})
    if not found:
        return None
    row = found[0]
    fields = orjson.loads(row[7]) if row[7] else {}
    runs = yield Sql("job_runs", {"event_id": job_id})
    return JobRecord(
        summary=EventSummary(*row[:7]),
        run_at=float(fields.get("runAt") or row[5]),
        idempotency_key=fields.get("key"),
        runs=[records.run_from_row(r) for r in runs],
    )
