"""The schedule operations of the store: the contract, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import time

from hookline.store.base import EventFilter, NewJob, NewTick, RunOutcome, Store
from hookline.store.schedules import KEEP_TICKS
from tests.integration.conftest import OpenStore
from tests.integration.test_store_jobs import HANDLERS, LEASE, T0, new_job

TICK = 1_700_000_100


def tick_job(tick: int, schedule: str = "nightly") -> NewJob:
    return new_job(key=f"{schedule}@{tick}", payload={"scheduledFor": tick}, at=T0)


def fired(tick: int, *, skip_if_active: bool = False, schedule: str = "nightly") -> NewTick:
    return NewTick(tick, "fired", tick_job(tick, schedule), skip_if_active)


async def jobs_in(store: Store) -> list[str]:
    return [e.id for e in await store.list_events(EventFilter(source="jobs"), 1000, None)]


async def finish_all(store: Store, status: str = "succeeded") -> None:
    for claimed in await store.claim_runs("w1", HANDLERS, 100, LEASE):
        outcome = RunOutcome(claimed.run.id, status)  # type: ignore[arg-type]
        assert await store.finish_run(claimed.claim("w1"), outcome)


async def test_a_tick_is_recorded_with_its_job_in_one_go(store: Store) -> None:
    tick = fired(TICK)
    (result,) = await store.record_ticks("nightly", [tick], T0)
    assert tick.job is not None
    assert (result.tick_at, result.outcome, result.job_id) == (TICK, "fired", tick.job.id)
    job = await store.get_job(tick.job.id)
    assert job is not None and job.idempotency_key == f"nightly@{TICK}"
    state = await store.schedule_state("nightly")
    assert (state.paused, state.last_job_id, state.last_tick_at) == (False, tick.job.id, TICK)
    (record,) = state.last_ticks
    assert (record.tick_at, record.outcome, record.job_id, record.recorded_at) == (
        TICK, "fired", tick.job.id, T0,
    )  # fmt: skip


async def test_a_tick_recorded_elsewhere_is_taken_and_enqueues_nothing(
    store: Store, open_another: OpenStore
) -> None:
    other = await open_another()
    (first,) = await store.record_ticks("nightly", [fired(TICK)], T0)
    (second,) = await other.record_ticks("nightly", [fired(TICK)], T0)
    assert (first.outcome, second.outcome, second.job_id) == ("fired", "taken", None)
    assert await jobs_in(store) == [first.job_id]
    # another schedule's tick at the same instant is its own
    (third,) = await other.record_ticks("weekly", [fired(TICK, schedule="weekly")], T0)
    assert third.outcome == "fired" and len(await jobs_in(store)) == 2


async def test_racing_processes_store_exactly_one_job_per_tick(open_another: OpenStore) -> None:
    stores = [await open_another() for _ in range(4)]
    ticks = [TICK + i for i in range(5)]

    async def tick_all(store: Store) -> list[str]:
        outcomes = []
        for t in ticks:
            (result,) = await store.record_ticks("every-second", [fired(t)], T0)
            outcomes.append(result.outcome)
        return outcomes

    results = await asyncio.gather(*(tick_all(s) for s in stores))
    for index in range(len(ticks)):
        assert sorted(r[index] for r in results) == ["fired", "taken", "taken", "taken"]
    state = await stores[0].schedule_state("every-second")
    assert sorted(t.tick_at for t in state.last_ticks) == ticks
    assert len(await jobs_in(stores[0])) == len(ticks)


async def test_overlap_skip_records_the_tick_while_the_last_job_is_active(store: Store) -> None:
    (first,) = await store.record_ticks("slow", [fired(TICK, skip_if_active=True)], T0)
    (second,) = await store.record_ticks("slow", [fired(TICK + 1, skip_if_active=True)], T0)
    assert (first.outcome, second.outcome, second.job_id) == ("fired", "skipped_overlap", None)
    # without skip_if_active (overlap = queue | allow) a tick enqueues whatever is active
    (third,) = await store.record_ticks("slow", [fired(TICK + 2)], T0)
    assert third.outcome == "fired"
    await finish_all(store)
    (fourth,) = await store.record_ticks("slow", [fired(TICK + 3, skip_if_active=True)], T0)
    assert fourth.outcome == "fired"
    state = await store.schedule_state("slow")
    assert [(t.tick_at - TICK, t.outcome) for t in state.last_ticks] == [
        (3, "fired"), (2, "fired"), (1, "skipped_overlap"), (0, "fired"),
    ]  # fmt: skip
    assert state.last_job_id == fourth.job_id
    assert len(await jobs_in(store)) == 3


async def test_a_failed_last_job_does_not_block_the_next_tick(store: Store) -> None:
    await store.record_ticks("slow", [fired(TICK, skip_if_active=True)], T0)
    await finish_all(store, "failed")
    (result,) = await store.record_ticks("slow", [fired(TICK + 1, skip_if_active=True)], T0)
    assert result.outcome == "fired"


async def test_missed_and_caught_up_ticks_in_one_transaction(store: Store) -> None:
    ticks = [NewTick(TICK + i, "missed") for i in range(3)]
    ticks.append(NewTick(TICK + 3, "caught_up", tick_job(TICK + 3)))
    results = await store.record_ticks("nightly", ticks, T0)
    assert [r.outcome for r in results] == ["missed", "missed", "missed", "caught_up"]
    assert [r.job_id is None for r in results] == [True, True, True, False]
    assert await jobs_in(store) == [results[-1].job_id]
    # a missed tick carries no job even if one is given
    (odd,) = await store.record_ticks("nightly", [NewTick(TICK + 4, "missed", tick_job(1))], T0)
    assert (odd.outcome, odd.job_id) == ("missed", None)
    assert len(await jobs_in(store)) == 1


async def test_pause_is_stored_shared_and_survives_a_restart(
    store: Store, open_another: OpenStore
) -> None:
    await store.set_schedule_paused("nightly", True, T0)
    other = await open_another()  # another process, or this one after a restart
    assert (await other.schedule_state("nightly")).paused
    (result,) = await other.record_ticks("nightly", [fired(TICK)], T0)
    assert result.outcome == "paused"
    state = await store.schedule_state("nightly")
    assert state.last_ticks == [] and await jobs_in(store) == []

    await other.set_schedule_paused("nightly", False, T0 + 60)
    state = await store.schedule_state("nightly")
    assert (state.paused, state.resumed_at) == (False, T0 + 60)
    await store.set_schedule_paused("nightly", False, T0 + 120)  # resuming a running one
    assert (await store.schedule_state("nightly")).resumed_at == T0 + 60
    (result,) = await store.record_ticks("nightly", [fired(TICK + 1)], T0)
    assert result.outcome == "fired"


async def test_a_trigger_runs_now_paused_or_not_and_counts_for_overlap(store: Store) -> None:
    await store.set_schedule_paused("slow", True, T0)
    job = new_job(payload={"scheduledFor": "now"})
    enqueued = await store.trigger_schedule("slow", job)
    assert (enqueued.job_id, enqueued.outcome) == (job.id, "created")
    state = await store.schedule_state("slow")
    assert state.paused and state.last_job_id == job.id and state.last_ticks == []
    await store.set_schedule_paused("slow", False, T0)
    (result,) = await store.record_ticks("slow", [fired(TICK, skip_if_active=True)], T0)
    assert result.outcome == "skipped_overlap"  # the triggered job is still queued


async def test_an_unknown_schedule_reads_as_defaults(store: Store) -> None:
    state = await store.schedule_state("never-seen")
    assert (state.paused, state.resumed_at, state.last_job_id, state.last_ticks) == (
        False, None, None, [],
    )  # fmt: skip


async def test_the_newest_tick_records_are_kept(store: Store) -> None:
    ticks = [NewTick(TICK + i, "missed") for i in range(KEEP_TICKS + 5)]
    await store.record_ticks("busy", ticks, T0)
    await store.record_ticks("other", [NewTick(TICK, "missed")], T0)
    kept = (await store.schedule_state("busy", ticks=KEEP_TICKS * 2)).last_ticks
    assert len(kept) == KEEP_TICKS
    assert (kept[0].tick_at, kept[-1].tick_at) == (TICK + KEEP_TICKS + 4, TICK + 5)
    assert len((await store.schedule_state("other")).last_ticks) == 1


async def test_a_tick_whose_job_key_is_taken_records_that_job(store: Store) -> None:
    """A tick record pruned long ago, its job still stored: the key finds the job."""
    job = tick_job(TICK)
    await store.enqueue_job(job)
    (result,) = await store.record_ticks("nightly", [NewTick(TICK, "fired", tick_job(TICK))], T0)
    assert (result.outcome, result.job_id) == ("fired", job.id)
    assert (await store.schedule_state("nightly")).last_ticks[0].job_id == job.id
    assert await jobs_in(store) == [job.id]


async def test_the_store_clock(store: Store) -> None:
    before = time.time()
    now = await store.now()
    assert isinstance(now, float)
    assert before - 60 < now < time.time() + 60  # the database's clock, on this machine
