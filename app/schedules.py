"""Schedules: ``[[schedules]]`` entries that enqueue their job at each tick.

This module holds what every caller of schedules shares — the admin API, the dashboard,
the CLI and the ``Scheduler`` (``hookline.scheduler``, the loop that ticks): the job a
tick or a trigger enqueues, pause and resume, and a schedule's state for display. Pure of
HTTP, like ``jobs``.

A tick's job: ``Event.data`` is the configured payload plus ``{"scheduledFor": "<the
tick's ISO time>"}``; its idempotency key is ``"<schedule name>@<ISO tick time>"``; its
run carries the concurrency key ``schedule:<name>`` unless ``overlap = "allow"``, so runs
of one schedule take turns (in arrival order) and never run at once. A manual trigger's
``scheduledFor`` is the time it was triggered, and it has no idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from hookline.config import ScheduleConfig, Settings
from hookline.errors import ConfigError
from hookline.jobs import Jobs, canonical_json
from hookline.pipeline import Registry
from hookline.store.base import NewJob, ScheduleState, Store
from hookline.timetable import iso

LAST_TICKS = 10  # tick records shown per schedule (admin API, dashboard, CLI)


def check_schedules(settings: Settings, registry: Registry) -> None:
    """Each schedule names a loaded job, and its payload (with ``scheduledFor``) passes the
    job's payload model. Raises ``ConfigError`` naming the key: checked before serving."""
    for index, schedule in enumerate(settings.schedules):
        key = f"schedules[{index}]"
        spec = registry.job(schedule.job)
        if spec is None:
            known = ", ".join(s.job for s in registry.jobs if s.job) or "none"
            raise ConfigError(
                f"{key}.job: no job named {schedule.job!r} is loaded by [pipeline] handlers "
                f"(jobs: {known})"
            )
        if spec.payload is None:
            continue
        try:
            spec.payload.model_validate_json(payload(schedule, 0.0))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(
                f"{key}.payload: does not match {spec.payload.__name__} "
                f"({where}: {first['msg']}; scheduledFor is added to it)"
            ) from None


def payload(schedule: ScheduleConfig, scheduled_for: float) -> bytes:
    """The job's payload for a tick (or a trigger) at ``scheduled_for``."""
    return canonical_json({**schedule.payload, "scheduledFor": iso(scheduled_for)})


def concurrency_key(schedule: ScheduleConfig) -> str | None:
    return None if schedule.overlap == "allow" else f"schedule:{schedule.name}"


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule as shown: its config, its stored state and its next tick."""

    config: ScheduleConfig
    state: ScheduleState
    next_tick_at: int | None  # None while paused


class UnknownSchedule(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r} is configured")


class Schedules:
    def __init__(self, settings: Settings, store: Store, jobs: Jobs) -> None:
        self._settings = settings
        self._store = store
        self._jobs = jobs

    @property
    def configured(self) -> Sequence[ScheduleConfig]:
        return self._settings.schedules

    def get(self, name: str) -> ScheduleConfig:
        schedule = self._settings.schedule(name)
        if schedule is None:
            raise UnknownSchedule(name)
        return schedule

    def tick_job(self, schedule: ScheduleConfig, tick_at: int, now: float) -> NewJob:
        """The job of one tick: keyed by the tick, so no tick can store two."""
        return self._jobs.build(
            schedule.job,
            payload(schedule, tick_at),
            idempotency_key=f"{schedule.name}@{iso(tick_at)}",
            now=now,
            concurrency_key=concurrency_key(schedule),
        )

    async def trigger(self, name: str) -> str:
        """Enqueue the schedule's job now, paused or not; return its job id."""
        schedule = self.get(name)
        now = await self._store.now()
        job = self._jobs.build(
            schedule.job,
            payload(schedule, now),
            now=now,
            concurrency_key=concurrency_key(schedule),
        )
        return (await self._store.trigger_schedule(name, job)).job_id

    async def set_paused(self, name: str, paused: bool) -> ScheduleView:
        self.get(name)
        await self._store.set_schedule_paused(name, paused, await self._store.now())
        return await self.view(name)

    async def view(self, name: str, now: float | None = None) -> ScheduleView:
        schedule = self.get(name)
        state = await self._store.schedule_state(name, LAST_TICKS)
        now = await self._store.now() if now is None else now
        next_tick = None if state.paused else schedule.times().next_after(now)
        return ScheduleView(schedule, state, next_tick)

    async def views(self) -> list[ScheduleView]:
        now = await self._store.now()
        return [await self.view(s.name, now) for s in self.configured]
