"""The scheduler: enqueues each schedule's job at its ticks. Runs in every ``serve``.

One task per schedule sleeps until the next tick (not a poll), asks the store's clock
(PostgreSQL's, so every process agrees; SQLite: this machine's) and records the ticks that
are due. Every process that runs a scheduler records the same ticks; the store lets the
first win each one (``Store.record_ticks``), so a tick enqueues exactly one job however
many processes tick, and a process that crashes mid-tick loses nothing the others need.

Which ticks are due, from a cursor (the last tick handled):

- On start the cursor is the newest tick recorded for the schedule (or when it was last
  resumed, if later); on the first start ever there is none and nothing counts as missed.
- A tick up to ``MISSED_AFTER_SECONDS`` old is *on time* (at a restart, only the newest
  due tick can be: the older ones came while nothing ran): it is fired (recorded ``fired``,
  or ``skipped_overlap`` while the schedule's last job is active and ``overlap = "skip"``).
- Any other due tick passed while nothing ran — the service was down, the store unreachable, the
  machine asleep. ``catch_up`` decides it: ``skip`` records it ``missed``; ``latest``
  enqueues the newest such tick (``caught_up``) and records the rest ``missed``; ``all``
  enqueues each (``caught_up``; these skip no overlap: "all" means each runs, and they take
  turns through the schedule's concurrency key unless ``overlap = "allow"``).
- Only ticks within ``catch_up_window`` are looked at (at most ``MAX_CATCH_UP_TICKS``, the
  newest): after a long downtime older ones are neither run nor recorded.

A tick's records and jobs are written in one transaction per pass, in tick order, so a
process starting beside a running one sees all of a pass or none of it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable

from hookline.config import ScheduleConfig
from hookline.errors import StoreError
from hookline.schedules import Schedules
from hookline.store.base import NewTick, Store, TickResult
from hookline.timetable import Timetable, iso, ticks_between

log = logging.getLogger("hookline.scheduler")
MISSED_AFTER_SECONDS = 5.0
MAX_CATCH_UP_TICKS = 1000
RETRY_SECONDS = 1.0

Clock = Callable[[], Awaitable[float]]


class Scheduler:
    def __init__(self, schedules: Schedules, store: Store, clock: Clock | None = None) -> None:
        self._schedules = schedules
        self._store = store
        self._clock = clock or store.now
        self._paused: set[str] = set()  # schedules this process last found paused

    async def run(self) -> None:
        """Tick every configured schedule until cancelled."""
        configured = list(self._schedules.configured)
        if not configured:
            return
        log.info("scheduler started", extra={"schedules": [s.name for s in configured]})
        async with asyncio.TaskGroup() as group:
            for schedule in configured:
                group.create_task(self._tick_forever(schedule), name=f"schedule-{schedule.name}")

    async def _tick_forever(self, schedule: ScheduleConfig) -> None:
        times = schedule.times()
        cursor: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                now = await self._clock()
                read_at = loop.time()
                cursor = await self.advance(schedule, times, cursor, now)
                # ``now`` is as old as the pass that recorded ticks: sleep only what is left
                delay = times.next_after(cursor) - now - (loop.time() - read_at)
            except (StoreError, sqlite3.Error, OSError) as exc:
                log.warning(
                    "schedule tick failed; retrying",
                    extra={"schedule": schedule.name, "error": str(exc)},
                )
                delay = RETRY_SECONDS
            except Exception:  # a bug must not stop every schedule: log it, keep ticking
                log.exception("schedule tick failed", extra={"schedule": schedule.name})
                delay = RETRY_SECONDS
            await asyncio.sleep(max(0.0, delay))

    async def advance(
        self, schedule: ScheduleConfig, times: Timetable, cursor: float | None, now: float
    ) -> float:
        """Record the ticks due at ``now`` since ``cursor`` (None: since the newest stored
        one); return the new cursor."""
        restart = cursor is None
        if cursor is None:
            state = await self._store.schedule_state(schedule.name, ticks=1)
            known = [t for t in (state.last_tick_at, state.resumed_at) if t is not None]
            if not known:
                return now  # never ticked before: nothing was missed
            cursor = max(known)
        horizon = max(schedule.catch_up_seconds, MISSED_AFTER_SECONDS)
        due = ticks_between(times, max(cursor, now - horizon), now, MAX_CATCH_UP_TICKS)
        if due:
            ticks = self.plan(schedule, due, now, restart=restart)
            results = await self._store.record_ticks(schedule.name, ticks, now)
            self._note_pause(schedule, results)
            _log(schedule, results)
        return now

    def _note_pause(self, schedule: ScheduleConfig, results: list[TickResult]) -> None:
        """One log line when this process finds the schedule paused, one when resumed."""
        paused = all(r.outcome == "paused" for r in results)
        if paused and schedule.name not in self._paused:
            self._paused.add(schedule.name)
            log.info("schedule is paused; its ticks are not recorded",
                     extra={"schedule": schedule.name})  # fmt: skip
        elif not paused and schedule.name in self._paused:
            self._paused.discard(schedule.name)
            log.info("schedule resumed", extra={"schedule": schedule.name})

    def plan(
        self, schedule: ScheduleConfig, due: list[int], now: float, *, restart: bool = False
    ) -> list[NewTick]:
        """What to record for the ``due`` ticks (oldest first) at ``now``.

        A tick up to ``MISSED_AFTER_SECONDS`` old is on time. At a ``restart`` (the first
        pass of this process) only the newest can be: an older one, however recent, came
        and went while nothing ran (the last seconds of a downtime), so ``catch_up``
        decides it; the newest may be one a live process is recording right now."""
        recent = [t for t in due if now - t <= MISSED_AFTER_SECONDS]
        on_time = recent[-1:] if restart else recent
        late = due[: len(due) - len(on_time)]
        caught_up: set[int] = set()
        if schedule.catch_up == "all":
            caught_up = set(late)
        elif schedule.catch_up == "latest" and late:
            caught_up = {late[-1]}
        ticks = [
            NewTick(t, "caught_up", self._schedules.tick_job(schedule, t, now))
            if t in caught_up
            else NewTick(t, "missed")
            for t in late
        ]
        skip = schedule.overlap == "skip"
        ticks += [
            NewTick(t, "fired", self._schedules.tick_job(schedule, t, now), skip_if_active=skip)
            for t in on_time
        ]
        return ticks


def _log(schedule: ScheduleConfig, results: list[TickResult]) -> None:
    missed = [r for r in results if r.outcome == "missed"]
    if missed:
        log.warning(
            "schedule ticks missed",
            extra={"schedule": schedule.name, "count": len(missed),
                   "from": iso(missed[0].tick_at), "to": iso(missed[-1].tick_at)},
        )  # fmt: skip
    for result in results:
        if result.outcome in ("fired", "caught_up", "skipped_overlap"):
            log.info(
                "schedule tick",
                extra={"schedule": schedule.name, "tickAt": iso(result.tick_at),
                       "outcome": result.outcome, "jobId": result.job_id},
            )  # fmt: skip
