"""The scheduler over a real store (SQLite and PostgreSQL), driven by a clock we set.

A "process" is a ``Scheduler`` with its own store connection and its own cursor; stopping
everything is dropping them, restarting is making new ones on the same database.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from hookline.config import ScheduleConfig, Settings, parse_settings
from hookline.errors import ConfigError
from hookline.jobs import Jobs
from hookline.pipeline import Event, HandlerSpec, Registry
from hookline.scheduler import MAX_CATCH_UP_TICKS, MISSED_AFTER_SECONDS, Scheduler
from hookline.schedules import Schedules, check_schedules
from hookline.store.base import EventFilter, RunOutcome, Store
from hookline.timetable import iso
from tests.integration.conftest import OpenStore

T = 1_700_000_000  # a multiple of 10 and of 60


class Report(BaseModel):
    kind: str
    scheduledFor: str  # the payload's own field name


async def report(event: Event, ctx: Any) -> None: ...


REGISTRY = Registry([HandlerSpec("tests:report", report, "jobs", "report", payload=Report)])


def settings_with(**schedule: Any) -> Settings:
    """One schedule; overlap = "queue" unless given (no worker runs the jobs here)."""
    entry = {
        "name": "tick",
        "job": "report",
        "every": "10s",
        "payload": {"kind": "daily"},
        "overlap": "queue",
    }
    return parse_settings({"schedules": [{**entry, **schedule}]}, {})


class Process:
    """One serve process's scheduler, on its own store connection."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.store = store
        self.schedule: ScheduleConfig = settings.schedules[0]
        self.schedules = Schedules(settings, store, Jobs(settings, store, REGISTRY))
        self.scheduler = Scheduler(self.schedules, store, clock=self._now)
        self.now = 0.0
        self.cursor: float | None = None

    async def _now(self) -> float:
        return self.now

    async def at(self, now: float) -> None:
        self.now = now
        self.cursor = await self.scheduler.advance(
            self.schedule, self.schedule.times(), self.cursor, now
        )


async def outcomes(store: Store, name: str = "tick") -> dict[int, tuple[str, str | None]]:
    state = await store.schedule_state(name, ticks=5000)
    return {t.tick_at - T: (t.outcome, t.job_id) for t in reversed(state.last_ticks)}


async def job_payloads(store: Store) -> list[dict[str, Any]]:
    events = await store.list_events(EventFilter(source="jobs"), 5000, None)
    found = []
    for summary in reversed(events):
        record = await store.get_event(summary.id)
        assert record is not None
        found.append(json.loads(record.body))
    return found


async def test_the_first_start_misses_nothing_then_each_tick_fires(store: Store) -> None:
    process = Process(settings_with(), store)
    await process.at(T + 0.5)
    assert await outcomes(store) == {}
    for second in (10.01, 20.02, 30.5):
        await process.at(T + second)
    ticks = await outcomes(store)
    assert [(t, o) for t, (o, _) in ticks.items()] == [(10, "fired"), (20, "fired"), (30, "fired")]
    payloads = await job_payloads(store)
    assert payloads == [{"kind": "daily", "scheduledFor": iso(T + t)} for t in (10, 20, 30)]
    job = await store.get_job(ticks[20][1] or "")
    assert job is not None and job.idempotency_key == f"tick@{iso(T + 20)}"
    assert job.runs[0].concurrency_key == "schedule:tick"  # runs of a schedule take turns


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        ("skip", ["missed", "missed", "missed"]),
        ("latest", ["missed", "missed", "caught_up"]),
        ("all", ["caught_up", "caught_up", "caught_up"]),
    ],
)
async def test_ticks_missed_while_nothing_ran(
    open_another: OpenStore, catch_up: str, expected: list[str]
) -> None:
    settings = settings_with(catch_up=catch_up)
    first = Process(settings, await open_another())
    await first.at(T + 0.5)
    await first.at(T + 10.1)
    await first.at(T + 20.1)  # then everything stops across the ticks at +30, +40, +50
    restarted = Process(settings, await open_another())
    await restarted.at(T + 62.5)
    ticks = await outcomes(restarted.store)
    assert [ticks[t][0] for t in (30, 40, 50)] == expected
    assert ticks[60][0] == "fired"  # 2.5 s late is on time: not missed
    enqueued = [t for t in (30, 40, 50) if ticks[t][1] is not None]
    assert len(enqueued) == expected.count("caught_up")
    scheduled_for = [p["scheduledFor"] for p in await job_payloads(restarted.store)]
    assert scheduled_for == [iso(T + t) for t in (10, 20, *enqueued, 60)]


@pytest.mark.parametrize(
    ("catch_up", "expected", "newest"),
    [
        ("skip", ["missed", "missed", "missed"], "fired"),
        ("latest", ["missed", "missed", "caught_up"], "skipped_overlap"),
        ("all", ["caught_up", "caught_up", "caught_up"], "skipped_overlap"),
    ],
)
async def test_only_the_newest_tick_at_a_restart_is_on_time(
    open_another: OpenStore, catch_up: str, expected: list[str], newest: str
) -> None:
    """Back 1.1 s after the tick at +10: the tick at +8 is only 3.1 s old, but +10 came after
    it while nothing ran, so catch_up decides +8 as it does +4 and +6. +10 is on time, and
    with overlap = "skip" a job just caught up is a run still active: it skips +10."""
    settings = settings_with(every="2s", catch_up=catch_up, overlap="skip")
    first = Process(settings, await open_another())
    await first.at(T + 0.5)
    await first.at(T + 2.1)  # then down across +4 … +10, once the tick's job has run
    (claimed,) = await first.store.claim_runs("w", ["tests:report"], 5, 30)
    await first.store.finish_run(claimed.claim("w"), RunOutcome(claimed.run.id, "succeeded"))
    restarted = Process(settings, await open_another())
    await restarted.at(T + 11.1)
    ticks = await outcomes(restarted.store)
    assert [ticks[t][0] for t in (4, 6, 8)] == expected
    assert ticks[10][0] == newest
    scheduled_for = [p["scheduledFor"] for p in await job_payloads(restarted.store)]
    caught = [t for t, outcome in zip((4, 6, 8), expected, strict=True) if outcome == "caught_up"]
    fired = [10] if newest == "fired" else []
    assert scheduled_for == [iso(T + t) for t in (2, *caught, *fired)]


async def test_a_live_process_fires_every_tick_it_reaches_within_the_margin(store: Store) -> None:
    """Not a restart: a pass that comes late (a busy event loop, a slow store) fires every
    tick up to MISSED_AFTER_SECONDS old, not only the newest."""
    process = Process(settings_with(every="1s"), store)
    await process.at(T + 0.2)
    await process.at(T + 1.05)
    await process.at(T + 3.1)
    ticks = await outcomes(store)
    assert {t: o for t, (o, _) in ticks.items()} == {1: "fired", 2: "fired", 3: "fired"}


async def test_two_processes_starting_after_a_downtime_agree(open_another: OpenStore) -> None:
    settings = settings_with(catch_up="latest")
    first = Process(settings, await open_another())
    await first.at(T + 0.5)
    await first.at(T + 10.1)
    a, b = Process(settings, await open_another()), Process(settings, await open_another())
    await asyncio.gather(a.at(T + 52.0), b.at(T + 52.0))
    await asyncio.gather(a.at(T + 60.2), b.at(T + 60.3))
    ticks = await outcomes(a.store)
    assert {t: o for t, (o, _) in ticks.items()} == {
        10: "fired", 20: "missed", 30: "missed", 40: "caught_up", 50: "fired", 60: "fired",
    }  # fmt: skip
    assert len(await job_payloads(a.store)) == 4


async def test_missed_ticks_are_bounded_by_the_window_and_a_cap(open_another: OpenStore) -> None:
    windowed = settings_with(catch_up="all", catch_up_window="1m")
    first = Process(windowed, await open_another())
    await first.at(T + 0.5)
    await first.at(T + 10.1)
    back = Process(windowed, await open_another())
    await back.at(T + 86_400 + 0.5)  # a day later: only the last minute is looked at
    ticks = await outcomes(back.store)
    assert sorted(ticks) == [10, *range(86_400 - 50, 86_401, 10)]
    assert {o for t, (o, _) in ticks.items() if t > 10} == {"caught_up", "fired"}

    capped = settings_with(name="often", every="1s", catch_up="skip", catch_up_window="1d")
    first = Process(capped, await open_another())
    await first.at(T + 0.5)
    await first.at(T + 1.1)
    back = Process(capped, await open_another())
    await back.at(T + 7200.5)
    ticks = await outcomes(back.store, "often")
    # the newest 1000 ticks were looked at (and the first tick's record is pruned: 1000 kept)
    assert sorted(ticks) == list(range(7200 - MAX_CATCH_UP_TICKS + 1, 7201))


async def test_a_stalled_process_misses_too(store: Store) -> None:
    """A live process whose ticks come late (a machine asleep, the store away) applies
    catch_up to what is more than MISSED_AFTER_SECONDS late."""
    process = Process(settings_with(catch_up="skip"), store)
    await process.at(T + 0.5)
    await process.at(T + 10.1)
    await process.at(T + 30 + MISSED_AFTER_SECONDS + 1)
    ticks = await outcomes(store)
    assert {t: o for t, (o, _) in ticks.items()} == {10: "fired", 20: "missed", 30: "missed"}


async def test_a_pause_is_no_downtime(open_another: OpenStore) -> None:
    settings = settings_with(catch_up="all")
    first = Process(settings, await open_another())
    await first.at(T + 0.5)
    await first.at(T + 10.1)
    await first.schedules.set_paused("tick", True)
    await first.at(T + 20.1)
    await first.at(T + 30.1)
    assert sorted(await outcomes(first.store)) == [10]  # paused ticks leave no record
    # everything stops; resumed (e.g. from the CLI) at +45; started again at +72
    await first.store.set_schedule_paused("tick", False, T + 45.0)
    back = Process(settings, await open_another())
    await back.at(T + 72.0)
    ticks = await outcomes(back.store)
    assert {t: o for t, (o, _) in ticks.items()} == {
        10: "fired", 50: "caught_up", 60: "caught_up", 70: "fired",
    }  # fmt: skip


@pytest.mark.parametrize(("overlap", "key"), [("queue", "schedule:tick"), ("allow", None)])
async def test_overlap_queue_and_allow_enqueue_every_tick(
    store: Store, overlap: str, key: str | None
) -> None:
    process = Process(settings_with(overlap=overlap), store)
    await process.at(T + 0.5)
    await process.at(T + 10.1)
    await process.at(T + 20.1)  # the first job is still queued
    ticks = await outcomes(store)
    assert [o for o, _ in ticks.values()] == ["fired", "fired"]
    for _, job_id in ticks.values():
        job = await store.get_job(job_id or "")
        assert job is not None and job.runs[0].concurrency_key == key


async def test_overlap_skip_skips_while_the_last_run_is_active(store: Store) -> None:
    process = Process(settings_with(overlap="skip"), store)
    await process.at(T + 0.5)
    await process.at(T + 10.1)
    await process.at(T + 20.1)
    claimed = await store.claim_runs("w", ["tests:report"], 5, 30)
    assert len(claimed) == 1
    await process.at(T + 30.1)  # running
    await store.finish_run(claimed[0].claim("w"), RunOutcome(claimed[0].run.id, "succeeded"))
    await process.at(T + 40.1)
    ticks = await outcomes(store)
    assert [o for o, _ in ticks.values()] == [
        "fired", "skipped_overlap", "skipped_overlap", "fired",
    ]  # fmt: skip


async def test_a_trigger_is_now_and_not_a_tick(store: Store) -> None:
    process = Process(settings_with(), store)
    job_id = await process.schedules.trigger("tick")
    payloads = await job_payloads(store)
    assert len(payloads) == 1 and payloads[0]["kind"] == "daily"
    now = await store.now()
    assert payloads[0]["scheduledFor"][:16] == iso(now)[:16]
    state = await store.schedule_state("tick")
    assert state.last_ticks == [] and state.last_job_id == job_id


async def test_the_loop_sleeps_until_each_tick_and_stops_when_cancelled(store: Store) -> None:
    settings = settings_with(every="1s")
    schedules = Schedules(settings, store, Jobs(settings, store, REGISTRY))
    running = asyncio.create_task(Scheduler(schedules, store).run())
    try:
        while len((await store.schedule_state("tick")).last_ticks) < 2:
            assert not running.done()
            await asyncio.sleep(0.05)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    ticks = (await store.schedule_state("tick")).last_ticks
    assert {t.outcome for t in ticks} <= {"fired", "skipped_overlap"}
    assert ticks[0].tick_at - ticks[1].tick_at == 1


def test_schedules_are_checked_against_the_loaded_jobs() -> None:
    check_schedules(settings_with(), REGISTRY)
    with pytest.raises(ConfigError, match=r"schedules\[0\]\.job: no job named 'nope'.*report"):
        check_schedules(settings_with(job="nope"), REGISTRY)
    with pytest.raises(ConfigError, match=r"schedules\[0\]\.payload: does not match Report"):
        check_schedules(settings_with(payload={"kind": 3}), REGISTRY)


async def test_a_schedule_that_fails_does_not_stop_the_others(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A job gone from the handlers (check_schedules would refuse it at start) fails its own
    ticks, logged; the other schedules keep ticking."""
    entries = [
        {"name": "good", "job": "report", "every": "1s", "payload": {"kind": "daily"}},
        {"name": "bad", "job": "gone", "every": "1s"},
    ]
    settings = parse_settings({"schedules": entries}, {})
    schedules = Schedules(settings, store, Jobs(settings, store, REGISTRY))
    running = asyncio.create_task(Scheduler(schedules, store).run())
    try:
        while len((await store.schedule_state("good")).last_ticks) < 2:
            assert not running.done()
            await asyncio.sleep(0.05)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert (await store.schedule_state("bad")).last_ticks == []
    failures = [r for r in caplog.records if r.getMessage() == "schedule tick failed"]
    assert failures and all(getattr(r, "schedule", "") == "bad" for r in failures)
