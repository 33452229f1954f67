"""The schedule operations of the store, written once for both dialects (see ``program``).

Exactly one job per (schedule, tick), however many processes tick: ``record`` inserts the
tick's row (``ON CONFLICT DO NOTHING`` on its primary key) and enqueues the tick's job in
the same transaction, and only when the insert won. The job's idempotency key names the
tick too, so even a path that skipped the tick row could not store a second job.

Every write of one schedule first locks its ``schedule_state`` row (PostgreSQL: ``FOR
UPDATE``; SQLite's writer holds the database's write lock already), so the overlap check
("is the schedule's last job still active?") and the enqueue it guards cannot interleave
with another process's.
"""

from __future__ import annotations

from collections.abc import Sequence

from hookline.store import jobs
from hookline.store.base import (
    ACTIVE_RUN_STATUSES,
    EnqueueResult,
    NewJob,
    NewTick,
    ScheduleState,
    TickOutcome,
    TickRecord,
    TickResult,
)
from hookline.store.program import Program, Sql

KEEP_TICKS = 1000  # tick records kept per schedule, newest first


def _lock(schedule: str, now: float) -> Program[tuple[bool, float | None, str | None]]:
    """Create the schedule's state row if need be, lock it, read it."""
    yield Sql("schedule_ensure", {"name": schedule, "now": now})
    (paused, resumed_at, last_job_id), *_ = yield Sql("schedule_lock", {"name": schedule})
    return bool(paused), resumed_at, last_job_id


def record(schedule: str, ticks: Sequence[NewTick], now: float) -> Program[list[TickResult]]:
    paused, _, last_job_id = yield from _lock(schedule, now)
    if paused:
        return [TickResult(tick.tick_at, "paused") for tick in ticks]
    results = []
    newest_job = last_job_id
    for tick in ticks:
        result = yield from _record_one(schedule, tick, newest_job, now)
        if result.outcome in ("fired", "caught_up"):
            newest_job = result.job_id
        results.append(result)
    if newest_job != last_job_id:
        yield Sql("schedule_set_last_job", {"name": schedule, "job_id": newest_job, "now": now})
    if any(result.outcome != "taken" for result in results):
        yield Sql("ticks_prune", {"schedule": schedule, "keep": KEEP_TICKS})
    return results


def _record_one(
    schedule: str, tick: NewTick, last_job_id: str | None, now: float
) -> Program[TickResult]:
    job = tick.job if tick.outcome != "missed" else None
    outcome: TickOutcome = tick.outcome
    if job is not None and tick.skip_if_active and last_job_id is not None:
        status = yield Sql("schedule_job_status", {"id": last_job_id})
        if status and status[0][0] in ACTIVE_RUN_STATUSES:
            job, outcome = None, "skipped_overlap"
    row = {
        "schedule": schedule,
        "tick_at": tick.tick_at,
        "outcome": outcome,
        "job_id": job.id if job is not None else None,
        "now": now,
    }
    if not (yield Sql("tick_insert", row)):
        return TickResult(tick.tick_at, "taken")
    if job is None:
        return TickResult(tick.tick_at, outcome)
    enqueued = yield from jobs.enqueue(job, jobs.prepare(job, now))
    if enqueued.job_id != job.id:  # its key named a job already (a tick record pruned since)
        yield Sql("tick_set_job", {**row, "job_id": enqueued.job_id})
    return TickResult(tick.tick_at, outcome, enqueued.job_id)


def trigger(schedule: str, job: NewJob) -> Program[EnqueueResult]:
    yield from _lock(schedule, job.created_at)
    enqueued = yield from jobs.enqueue(job, jobs.prepare(job, job.created_at))
    yield Sql(
        "schedule_set_last_job",
        {"name": schedule, "job_id": enqueued.job_id, "now": job.created_at},
    )
    return enqueued


def set_paused(schedule: str, paused: bool, now: float) -> Program[None]:
    was_paused, resumed_at, _ = yield from _lock(schedule, now)
    if was_paused and not paused:
        resumed_at = now  # the paused time is no downtime: nothing in it is caught up
    yield Sql(
        "schedule_set_paused",
        {"name": schedule, "paused": paused, "resumed_at": resumed_at, "now": now},
    )


def state(schedule: str, ticks: int) -> Program[ScheduleState]:
    found = yield Sql("schedule_state", {"name": schedule})
    rows = (yield Sql("ticks_newest", {"name": schedule, "limit": ticks})) if ticks > 0 else []
    last_ticks = [TickRecord(int(t), outcome, job, at) for t, outcome, job, at in rows]
    if not found:
        return ScheduleState(schedule, last_ticks=last_ticks)
    paused, resumed_at, last_job_id = found[0]
    return ScheduleState(schedule, bool(paused), resumed_at, last_job_id, last_ticks)
