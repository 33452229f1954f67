"""The ``Store`` contract, run against SQLite and PostgreSQL alike (fixture ``store``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

import pytest

from hookline.errors import RedeliveryInProgress
from hookline.store.base import (
    Claim,
    ClaimedRun,
    EventFilter,
    NewEvent,
    NewRun,
    RunOutcome,
    RunStatus,
    StepOutcome,
    Store,
    WorkerInfo,
    WorkerStats,
)
from tests.integration.conftest import OpenStore

T0 = 1_700_000_000.0
LEASE = 30.0
SHORT_LEASE = 0.3  # for the tests that wait for a lease to expire
HANDLERS = ("fulfil", "audit", "a", "b", "c")  # what the workers of these tests have loaded
_counter = iter(range(1_000_000))


def new_event(
    key: str | None = None,
    *,
    source: str = "stripe",
    type: str = "checkout.session.completed",
    handlers: Sequence[str] = ("fulfil",),
    at: float = T0,
    concurrency_key: str | None = None,
    max_attempts: int = 3,
) -> NewEvent:
    n = next(_counter)
    return NewEvent(
        id=f"evt_{n:06d}",
        source=source,
        provider_event_id=key or f"pe_{n:06d}",
        type=type,
        received_at=at,
        headers={"content-type": "application/json", "stripe-signature": "[redacted]"},
        body=json.dumps({"id": key, "n": n}).encode(),
        runs=[NewRun(f"run_{n:06d}_{h}", h, max_attempts, concurrency_key) for h in handlers],
    )


async def status_of(store: Store, event_id: str) -> str:
    record = await store.get_event(event_id)
    assert record is not None
    return record.summary.status


async def finish(store: Store, claim: Claim, status: RunStatus, *, delay: float = 0.0) -> bool:
    outcome = RunOutcome(
        claim.run_id, status, delay=delay, error="boom" if status == "failed" else None
    )
    return await store.finish_run(claim, outcome)


async def claim(
    store: Store, worker: str = "w1", limit: int = 10, lease: float = LEASE
) -> list[ClaimedRun]:
    return await store.claim_runs(worker, HANDLERS, limit, lease)


async def claim_one(store: Store, worker: str = "w1", lease: float = LEASE) -> Claim:
    claimed = await claim(store, worker, 1, lease)
    assert len(claimed) == 1
    return claimed[0].claim(worker)


async def wait_for_claim(store: Store, worker: str, timeout: float = 10.0) -> Claim:
    """Claim one run as soon as the store's clock lets one be claimed."""
    deadline = time.monotonic() + timeout
    while not (claimed := await claim(store, worker, 1)):
        assert time.monotonic() < deadline, "nothing could be claimed"
        await asyncio.sleep(0.02)
    return claimed[0].claim(worker)


async def wait_until_due(store: Store, timeout: float = 10.0) -> None:
    """Wait (on the store's clock) until a lease has expired or a retry is due."""
    deadline = time.monotonic() + timeout
    while not await store.has_due_runs(HANDLERS):
        assert time.monotonic() < deadline, "nothing became due"
        await asyncio.sleep(0.02)


# -- schema ---------------------------------------------------------------------------------


async def test_migrate_is_idempotent_and_the_store_ready(store: Store) -> None:
    version = await store.migrate()
    assert version >= 1
    assert await store.migrate() == version
    await store.check_ready()


# -- ingestion ------------------------------------------------------------------------------


async def test_ingest_stores_the_event_and_its_runs_together(store: Store) -> None:
    event = new_event("pe_a", handlers=("fulfil", "audit"))
    result = await store.ingest(event, resume_failed=True)
    assert (result.id, result.duplicate, result.resumed_run_ids) == (event.id, False, ())

    record = await store.get_event(event.id)
    assert record is not None
    assert record.summary.source == "stripe"
    assert record.summary.provider_event_id == "pe_a"
    assert record.summary.status == "queued"
    assert record.summary.received_at == T0
    assert record.headers == event.headers
    assert record.body == event.body
    assert [(r.id, r.handler, r.status, r.generation, r.attempts) for r in record.runs] == [
        (event.runs[0].id, "fulfil", "queued", 0, 0),
        (event.runs[1].id, "audit", "queued", 0, 0),
    ]
    assert record.runs[0].max_attempts == 3
    assert await store.get_event("evt_missing") is None


async def test_an_event_no_handler_matched_is_unhandled(store: Store) -> None:
    event = new_event(handlers=())
    await store.ingest(event, resume_failed=True)
    assert await status_of(store, event.id) == "unhandled"
    assert await store.queue_depth(1000) == 0


async def test_a_duplicate_is_answered_with_the_first_id_and_starts_nothing(store: Store) -> None:
    first = new_event("pe_dup")
    await store.ingest(first, resume_failed=True)
    again = new_event("pe_dup")
    result = await store.ingest(again, resume_failed=True)
    assert (result.id, result.duplicate, result.resumed_run_ids) == (first.id, True, ())
    assert await store.get_event(again.id) is None
    assert await store.queue_depth(1000) == 1
    # the same provider event id from another source is another event
    other = new_event("pe_dup", source="github")
    assert not (await store.ingest(other, resume_failed=True)).duplicate


async def test_concurrent_duplicates_store_one_event(store: Store) -> None:
    events = [new_event("pe_race") for _ in range(10)]
    results = await asyncio.gather(*(store.ingest(e, resume_failed=True) for e in events))
    originals = [r for r in results if not r.duplicate]
    assert len(originals) == 1
    assert {r.id for r in results} == {originals[0].id}
    assert len(await store.list_events(EventFilter(), 100, None)) == 1
    assert await store.queue_depth(1000) == 1


async def test_a_resend_resumes_an_event_whose_runs_all_failed(store: Store) -> None:
    event = new_event("pe_resend", handlers=("a", "b"))
    await store.ingest(event, resume_failed=True)
    claimed = await claim(store)
    for item in claimed:
        assert await finish(store, item.claim("w1"), "failed")
    assert await status_of(store, event.id) == "failed"

    # without resume_failed, a resend is a plain duplicate
    plain = await store.ingest(new_event("pe_resend", at=T0 + 5), resume_failed=False)
    assert plain.duplicate and plain.resumed_run_ids == ()
    assert await status_of(store, event.id) == "failed"

    result = await store.ingest(new_event("pe_resend", at=T0 + 10), resume_failed=True)
    assert result.duplicate and len(result.resumed_run_ids) == 2
    record = await store.get_event(event.id)
    assert record is not None and record.summary.status == "queued"
    new_runs = [r for r in record.runs if r.id in result.resumed_run_ids]
    assert sorted((r.handler, r.status, r.generation) for r in new_runs) == [
        ("a", "queued", 0),
        ("b", "queued", 0),
    ]
    # the resumed runs are on their way: another resend starts nothing more
    again = await store.ingest(new_event("pe_resend", at=T0 + 20), resume_failed=True)
    assert again.duplicate and again.resumed_run_ids == ()


async def test_a_resend_does_not_resume_unless_every_run_failed(store: Store) -> None:
    event = new_event("pe_partial", handlers=("a", "b"))
    await store.ingest(event, resume_failed=True)
    first, second = await claim(store)
    await finish(store, first.claim("w1"), "succeeded")
    await finish(store, second.claim("w1"), "failed")
    assert await status_of(store, event.id) == "failed"
    result = await store.ingest(new_event("pe_partial"), resume_failed=True)
    assert result.duplicate and result.resumed_run_ids == ()
    assert await store.queue_depth(1000) == 0


async def test_concurrent_resends_resume_once(store: Store) -> None:
    event = new_event("pe_resends")
    await store.ingest(event, resume_failed=True)
    await finish(store, await claim_one(store), "failed")
    resends = [new_event("pe_resends") for _ in range(8)]
    results = await asyncio.gather(*(store.ingest(e, resume_failed=True) for e in resends))
    assert sum(len(r.resumed_run_ids) for r in results) == 1
    assert await store.queue_depth(1000) == 1


# -- reading --------------------------------------------------------------------------------


async def test_list_events_filters(store: Store) -> None:
    a = new_event("pe_aaa", type="checkout.session.completed", at=T0)
    b = new_event("pe_bbb", type="checkout.session.expired", at=T0 + 10)
    c = new_event("pe_ccc", source="github", type="pull_request.opened", at=T0 + 20)
    d = new_event("xx_aaa_yy", source="github", type="push", at=T0 + 30, handlers=())
    for event in (a, b, c, d):
        await store.ingest(event, resume_failed=True)
    await finish(store, await claim_one(store), "succeeded")  # a is claimed first

    async def ids(**kwargs: object) -> list[str]:
        found = await store.list_events(EventFilter(**kwargs), 100, None)  # type: ignore[arg-type]
        return [e.id for e in found]

    assert await ids() == [d.id, c.id, b.id, a.id]  # newest first
    assert await ids(source="github") == [d.id, c.id]
    assert await ids(type_glob="checkout.*") == [b.id, a.id]
    assert await ids(type_glob="*.opened") == [c.id]
    assert await ids(type_glob="push") == [d.id]
    assert await ids(type_glob="pull_request*") == [c.id]
    assert await ids(type_glob="pull%") == []  # % and _ are literal, only * is a wildcard
    assert await ids(type_glob="pull_reques_.opened") == []
    assert await ids(status="succeeded") == [a.id]
    assert await ids(status="queued") == [c.id, b.id]
    assert await ids(status="unhandled") == [d.id]
    assert await ids(since=T0 + 10) == [d.id, c.id, b.id]
    assert await ids(until=T0 + 10) == [a.id]  # until is exclusive
    assert await ids(since=T0 + 10, until=T0 + 30) == [c.id, b.id]
    assert await ids(search="aaa") == [d.id, a.id]  # a substring of the provider event id
    assert await ids(search="zzz") == []
    assert await ids(source="github", search="aaa", status="unhandled") == [d.id]
    assert await ids(source="", type_glob="", status="", search="") == [d.id, c.id, b.id, a.id]

    summary = (await store.list_events(EventFilter(source="stripe"), 1, None))[0]
    assert (summary.id, summary.source, summary.provider_event_id, summary.type) == (
        b.id,
        "stripe",
        "pe_bbb",
        "checkout.session.expired",
    )
    assert (summary.status, summary.received_at) == ("queued", T0 + 10)


async def test_list_events_paginates_with_a_seq_cursor(store: Store) -> None:
    events = [new_event(at=T0 + i) for i in range(7)]
    for event in events:
        await store.ingest(event, resume_failed=True)
    pages: list[list[str]] = []
    cursor: int | None = None
    while True:
        page = await store.list_events(EventFilter(), 3, cursor)
        if not page:
            break
        pages.append([e.id for e in page])
        cursor = page[-1].seq
    assert pages == [
        [events[6].id, events[5].id, events[4].id],
        [events[3].id, events[2].id, events[1].id],
        [events[0].id],
    ]
    listed = await store.list_events(EventFilter(), 10, None)
    seqs = [e.seq for e in listed]
    assert seqs == sorted(seqs, reverse=True)
    # the cursor composes with filters
    page = await store.list_events(EventFilter(since=T0 + 2), 10, listed[1].seq)
    assert [e.id for e in page] == [events[4].id, events[3].id, events[2].id]


# -- claiming -------------------------------------------------------------------------------


async def test_claim_heartbeat_finish(store: Store) -> None:
    event = new_event("pe_claim")
    await store.ingest(event, resume_failed=True)
    assert await store.has_due_runs(HANDLERS)
    assert not await store.has_due_runs(("other",))  # a worker that has not loaded it

    before = await store.now()
    claimed = await claim(store, "w1")
    assert len(claimed) == 1
    item = claimed[0]
    assert (item.run.id, item.run.status, item.run.attempts) == (event.runs[0].id, "running", 1)
    assert item.token >= 1 and item.claimed_at >= before
    assert (item.event.id, item.event.source, item.event.type) == (
        event.id,
        "stripe",
        "checkout.session.completed",
    )
    assert item.event.provider_event_id == "pe_claim"
    assert item.headers == event.headers and item.body == event.body
    assert await status_of(store, event.id) == "running"
    assert await claim(store, "w2") == []
    assert not await store.has_due_runs(HANDLERS)

    mine = item.claim("w1")
    assert await store.heartbeat([mine], LEASE) == {item.run.id: "running"}
    assert await store.heartbeat([Claim(item.run.id, "w2", item.token)], LEASE) == {}
    assert await store.heartbeat([Claim(item.run.id, "w1", item.token + 1)], LEASE) == {}
    assert await store.heartbeat([], LEASE) == {}

    result = RunOutcome(item.run.id, "succeeded", result_json=json.dumps({"order": 7}))
    assert not await store.finish_run(Claim(item.run.id, "w2", item.token), result)  # not its
    assert await store.finish_run(mine, result)
    assert await store.finish_run(mine, result)  # a retry of the same finish: still True
    failed = RunOutcome(item.run.id, "failed", error="late")
    assert not await store.finish_run(mine, failed)  # the claim is over
    assert await store.heartbeat([mine], LEASE) == {}

    run = await store.get_run(item.run.id)
    assert run is not None
    assert (run.status, run.attempts, run.result) == ("succeeded", 1, {"order": 7})
    assert run.updated_at >= item.claimed_at
    assert await status_of(store, event.id) == "succeeded"
    assert await store.get_run("run_missing") is None


async def test_claim_takes_only_the_handlers_a_worker_has_loaded(store: Store) -> None:
    new = new_event(handlers=("new-handler",))
    old = new_event(handlers=("fulfil",))
    for event in (new, old):
        await store.ingest(event, resume_failed=True)
    assert [c.run.id for c in await claim(store, "old-worker")] == [old.runs[0].id]
    assert await claim(store, "old-worker") == []
    assert not await store.has_due_runs(HANDLERS)
    assert await store.has_due_runs(("new-handler",))
    taken = await store.claim_runs("new-worker", ("new-handler",), 10, LEASE)
    assert [c.run.id for c in taken] == [new.runs[0].id]


async def test_claim_respects_limit_and_order(store: Store) -> None:
    events = [new_event(at=T0 + i) for i in range(5)]
    for event in events:
        await store.ingest(event, resume_failed=True)
    first = await claim(store, "w1", 2)
    assert [c.event.id for c in first] == [events[0].id, events[1].id]  # oldest first
    assert len(await claim(store, "w1", 10)) == 3


async def test_an_expired_lease_is_reclaimed_and_its_old_claim_fenced(store: Store) -> None:
    event = new_event()
    await store.ingest(event, resume_failed=True)
    old = await claim_one(store, "w1", lease=SHORT_LEASE)
    assert await claim(store, "w2") == []
    await wait_until_due(store)  # the lease expired on the store's clock
    assert await store.heartbeat([old], LEASE) == {}  # an expired lease is never revived
    reclaimed = await claim(store, "w2")
    assert [(c.run.id, c.run.attempts) for c in reclaimed] == [(old.run_id, 2)]
    new = reclaimed[0].claim("w2")
    assert new.token > old.token
    assert await store.heartbeat([old], LEASE) == {}
    assert not await finish(store, old, "succeeded")
    assert await finish(store, new, "succeeded")
    assert await status_of(store, event.id) == "succeeded"


async def test_a_retry_waits_for_its_delay_and_a_release_refunds_the_attempt(
    store: Store,
) -> None:
    event = new_event()
    await store.ingest(event, resume_failed=True)
    first = await claim_one(store, "w1")
    assert await finish(store, first, "retrying", delay=3600)
    assert await status_of(store, event.id) == "retrying"
    assert await store.queue_depth(1000) == 1
    assert await claim(store, "w1") == []  # due in an hour, on the store's clock

    other = new_event()
    await store.ingest(other, resume_failed=True)
    second = await claim_one(store, "w1")
    assert second.run_id == other.runs[0].id
    assert await finish(store, second, "retrying", delay=SHORT_LEASE)
    await wait_until_due(store)
    again = await claim_one(store, "w1")
    assert again.run_id == second.run_id and again.token > second.token

    release = RunOutcome(again.run_id, "queued", refund_attempt=True)
    assert await store.finish_run(again, release)
    run = await store.get_run(again.run_id)
    assert run is not None
    assert (run.status, run.attempts, run.error) == ("queued", 1, None)
    claimed = await claim(store, "w2")
    assert [(c.run.id, c.run.attempts) for c in claimed] == [(again.run_id, 2)]


async def test_a_concurrency_key_runs_one_at_a_time_in_order(store: Store) -> None:
    k1 = new_event(concurrency_key="cus_1", at=T0)
    k2 = new_event(concurrency_key="cus_1", at=T0 + 1)
    other = new_event(concurrency_key="cus_2", at=T0 + 2)
    unkeyed = new_event(at=T0 + 3)
    other_handler = new_event(concurrency_key="cus_1", handlers=("audit",), at=T0 + 4)
    for event in (k1, k2, other, unkeyed, other_handler):
        await store.ingest(event, resume_failed=True)

    claimed = await claim(store, "w1")
    assert {c.run.event_id for c in claimed} == {k1.id, other.id, unkeyed.id, other_handler.id}
    head = next(c.claim("w1") for c in claimed if c.run.event_id == k1.id)
    assert await claim(store, "w2") == []  # k2 waits for k1

    # a retrying run still holds its key
    assert await finish(store, head, "retrying", delay=SHORT_LEASE)
    assert await claim(store, "w2") == []
    again = await wait_for_claim(store, "w1")
    assert again.run_id == k1.runs[0].id
    assert await finish(store, again, "succeeded")
    assert (await claim_one(store, "w2")).run_id == k2.runs[0].id


async def test_cancelling_the_head_of_a_key_lets_the_next_run_start(store: Store) -> None:
    k1 = new_event(concurrency_key="cus_1")
    k2 = new_event(concurrency_key="cus_1")
    for event in (k1, k2):
        await store.ingest(event, resume_failed=True)
    assert await store.cancel_run(k1.runs[0].id) is not None
    assert (await claim_one(store, "w1")).run_id == k2.runs[0].id


async def test_concurrent_claimers_never_share_a_run(store: Store, open_another: OpenStore) -> None:
    count = 120
    for i in range(count):
        await store.ingest(new_event(at=T0 + i / 1000), resume_failed=True)
    stores = [store, await open_another()]

    async def claimer(worker: str, db: Store) -> list[str]:
        mine: list[str] = []
        while True:
            claimed = await claim(db, worker, 4)
            if not claimed:
                if await db.queue_depth(1000) == 0:
                    return mine
                await asyncio.sleep(0)
                continue
            for item in claimed:
                mine.append(item.run.id)
                assert await finish(db, item.claim(worker), "succeeded")

    got = await asyncio.gather(*(claimer(f"w{i}", stores[i % 2]) for i in range(4)))
    every = [run_id for ids in got for run_id in ids]
    assert len(every) == len(set(every)) == count
    assert all(got)  # everyone got some: they really ran concurrently
    assert (await store.run_counts()) == {"succeeded": count}


async def test_concurrent_claimers_keep_each_key_one_at_a_time(
    store: Store, open_another: OpenStore
) -> None:
    keys = [f"cus_{k}" for k in range(4)]
    expected: dict[str, list[str]] = {k: [] for k in keys}
    for i in range(24):
        key = keys[i % len(keys)]
        event = new_event(concurrency_key=key, at=T0 + i / 1000)
        expected[key].append(event.runs[0].id)
        await store.ingest(event, resume_failed=True)
    stores = [store, await open_another()]
    in_flight: set[str] = set()
    order: dict[str, list[str]] = {k: [] for k in keys}

    async def claimer(worker: str, db: Store) -> None:
        while True:
            claimed = await claim(db, worker, 3)
            if not claimed:
                if await db.queue_depth(1000) == 0:
                    return
                await asyncio.sleep(0)
                continue
            for item in claimed:
                key = item.run.concurrency_key
                assert key is not None and key not in in_flight
                in_flight.add(key)
                order[key].append(item.run.id)
            await asyncio.sleep(0)
            for item in claimed:
                assert item.run.concurrency_key is not None
                in_flight.discard(item.run.concurrency_key)
                assert await finish(db, item.claim(worker), "succeeded")

    await asyncio.gather(*(claimer(f"w{i}", stores[i % 2]) for i in range(4)))
    assert order == expected


async def test_concurrent_finishes_of_one_event_leave_the_right_status(
    store: Store, open_another: OpenStore
) -> None:
    events = [new_event(handlers=("a", "b", "c")) for _ in range(20)]
    for event in events:
        await store.ingest(event, resume_failed=True)
    claimed = await claim(store, "w1", 100)
    assert len(claimed) == 60
    stores = [store, await open_another()]
    await asyncio.gather(
        *(finish(stores[i % 2], item.claim("w1"), "succeeded") for i, item in enumerate(claimed))
    )
    listed = await store.list_events(EventFilter(), 100, None)
    assert {e.status for e in listed} == {"succeeded"}


# -- steps ----------------------------------------------------------------------------------


def step(
    run_id: str,
    event_id: str,
    name: str,
    number: int,
    *,
    ok: bool,
    result: object = None,
    position: int = 0,
    generation: int = 0,
    at: float = T0,
) -> StepOutcome:
    return StepOutcome(
        run_id=run_id,
        event_id=event_id,
        handler="fulfil",
        generation=generation,
        name=name,
        position=position,
        number=number,
        started_at=at,
        ended_at=at + 0.5,
        succeeded=ok,
        result_json=json.dumps(result) if ok else None,
        error=None if ok else "ValueError: no",
        traceback=None if ok else "Traceback ...",
    )


async def test_record_step_never_overwrites_a_succeeded_step(store: Store) -> None:
    event = new_event()
    await store.ingest(event, resume_failed=True)
    mine = await claim_one(store)
    run_id = mine.run_id
    assert await store.record_step(mine, step(run_id, event.id, "charge", 1, ok=False, at=T0))
    steps = await store.load_steps(event.id, "fulfil", 0)
    assert [(s.name, s.status, s.result, s.attempts) for s in steps] == [
        ("charge", "failed", None, [])
    ]
    await store.record_step(mine, step(run_id, event.id, "charge", 2, ok=True, result={"id": 1}))
    await store.record_step(mine, step(run_id, event.id, "charge", 3, ok=False, at=T0 + 9))
    await store.record_step(
        mine, step(run_id, event.id, "email", 1, ok=True, result=["sent"], position=1)
    )

    steps = await store.load_steps(event.id, "fulfil", 0, attempts=True)
    assert [(s.name, s.position, s.status, s.result) for s in steps] == [
        ("charge", 0, "succeeded", {"id": 1}),
        ("email", 1, "succeeded", ["sent"]),
    ]
    charge = steps[0].attempts
    assert [(a.number, a.outcome, a.error) for a in charge] == [
        (1, "failed", "ValueError: no"),
        (2, "succeeded", None),
        (3, "failed", "ValueError: no"),
    ]
    assert (charge[0].started_at, charge[0].ended_at, charge[0].traceback) == (
        T0,
        T0 + 0.5,
        "Traceback ...",
    )
    assert await store.load_steps(event.id, "fulfil", 1) == []  # another generation
    assert await store.load_steps(event.id, "audit", 0) == []  # another handler
    run = await store.get_run(run_id)
    assert run is not None and [s.name for s in run.steps] == ["charge", "email"]
    assert [len(s.attempts) for s in run.steps] == [3, 1]


# -- redelivery, cancel, prune --------------------------------------------------------------


async def test_redeliver_resume_keeps_the_steps_and_fresh_starts_over(store: Store) -> None:
    event = new_event()
    await store.ingest(event, resume_failed=True)
    first = await claim_one(store)
    await store.record_step(first, step(first.run_id, event.id, "charge", 1, ok=True, result=1))
    await finish(store, first, "succeeded")

    before = await store.now()
    resumed = await store.redeliver(event.id, "resume")
    assert resumed is not None and len(resumed) == 1 and resumed[0] != first.run_id
    assert await status_of(store, event.id) == "queued"
    # while that run is on its way: resume returns it instead of a second run; fresh is
    # refused (it would run every step again beside it) and creates nothing
    assert await store.redeliver(event.id, "resume") == resumed
    with pytest.raises(RedeliveryInProgress) as refused:
        await store.redeliver(event.id, "fresh")
    assert refused.value.run_ids == resumed
    run = await store.get_run(resumed[0])
    assert run is not None
    assert (run.generation, run.status, run.attempts) == (0, "queued", 0)
    assert run.created_at >= before
    assert [s.name for s in run.steps] == ["charge"]  # the memo is shared

    again = await claim_one(store, "w1")
    assert again.run_id == resumed[0]
    await finish(store, again, "succeeded")
    fresh = await store.redeliver(event.id, "fresh")
    assert fresh is not None and len(fresh) == 1
    run = await store.get_run(fresh[0])
    assert run is not None and (run.generation, run.steps) == (1, [])
    assert await store.redeliver("evt_missing", "resume") is None
    unhandled = new_event(handlers=())
    await store.ingest(unhandled, resume_failed=True)
    assert await store.redeliver(unhandled.id, "resume") == []
    assert await status_of(store, unhandled.id) == "unhandled"


async def test_redeliver_matching_counts_matched_events(store: Store) -> None:
    events = [new_event(source="stripe") for _ in range(3)] + [new_event(source="github")]
    for event in events:
        await store.ingest(event, resume_failed=True)
    for _ in events:
        await finish(store, await claim_one(store), "failed")

    assert await store.redeliver_matching(EventFilter(source="stripe"), "resume") == 3
    assert await store.queue_depth(1000) == 3
    assert await store.redeliver_matching(EventFilter(source="stripe"), "resume") == 3
    assert await store.queue_depth(1000) == 3  # still on their way: nothing doubled
    assert await store.redeliver_matching(EventFilter(status="failed"), "fresh") == 1
    assert await store.queue_depth(1000) == 4
    assert await store.queue_depth(2) == 2  # a bounded count
    assert await store.redeliver_matching(EventFilter(source="nope"), "resume") == 0
    record = await store.get_event(events[3].id)
    assert record is not None and [r.generation for r in record.runs] == [0, 1]


async def test_cancel_run(store: Store) -> None:
    queued = new_event()
    running = new_event()
    for event in (queued, running):
        await store.ingest(event, resume_failed=True)

    before = await store.now()
    cancelled = await store.cancel_run(queued.runs[0].id)
    assert cancelled is not None
    assert cancelled.status == "cancelled" and cancelled.updated_at >= before
    assert await status_of(store, queued.id) == "cancelled"

    mine = await claim_one(store, "w1")
    assert mine.run_id == running.runs[0].id  # the cancelled run is never claimed
    cancelled = await store.cancel_run(mine.run_id)
    assert cancelled is not None
    # the worker learns it at its heartbeat; its lease is kept until it lets go
    assert await store.heartbeat([mine], LEASE) == {mine.run_id: "cancelled"}
    assert not await finish(store, mine, "succeeded")
    assert await store.heartbeat([mine], LEASE) == {}  # it let go
    run = await store.get_run(mine.run_id)
    assert run is not None and run.status == "cancelled"

    # cancelling a finished run changes nothing
    again = await store.cancel_run(mine.run_id)
    assert again is not None and again.updated_at == cancelled.updated_at
    assert await store.cancel_run("run_missing") is None
    assert await store.queue_depth(1000) == 0


async def test_prune_keeps_failed_and_unfinished_events(store: Store) -> None:
    done = new_event(at=T0)
    failed = new_event(at=T0)
    active = new_event(at=T0)
    unhandled = new_event(at=T0, handlers=())
    recent = new_event(at=T0 + 1000)
    for event in (done, failed, active, unhandled, recent):
        await store.ingest(event, resume_failed=True)
    outcomes: list[tuple[NewEvent, RunStatus]] = [(done, "succeeded"), (failed, "failed")]
    for event, status in outcomes:
        mine = await claim_one(store, "w1")
        assert mine.run_id == event.runs[0].id
        if event is done:
            await store.record_step(mine, step(mine.run_id, done.id, "s", 1, ok=True, result=1))
        await finish(store, mine, status)

    assert await store.prune(T0 + 500, include_failed=False) == 2
    assert await store.get_event(done.id) is None
    assert await store.get_event(unhandled.id) is None
    assert await store.get_run(done.runs[0].id) is None
    assert await store.load_steps(done.id, "fulfil", 0, attempts=True) == []
    for kept in (failed, active, recent):
        assert await store.get_event(kept.id) is not None
    assert await store.prune(T0 + 500, include_failed=True) == 1
    assert await store.get_event(failed.id) is None
    assert await store.get_event(active.id) is not None
    assert await store.prune(T0 + 500, include_failed=True) == 0


async def test_run_counts_and_queue_depth(store: Store) -> None:
    assert await store.run_counts() == {}
    assert await store.queue_depth(1000) == 0
    for _ in range(4):
        await store.ingest(new_event(), resume_failed=True)
    claimed = await claim(store, "w1", 3)
    await finish(store, claimed[0].claim("w1"), "succeeded")
    await finish(store, claimed[1].claim("w1"), "failed")
    assert await store.run_counts() == {"queued": 1, "running": 1, "succeeded": 1, "failed": 1}
    assert await store.queue_depth(1000) == 1


async def test_workers_and_their_counters(store: Store) -> None:
    started = time.time()
    assert await store.live_workers() == 0
    assert await store.worker_stats() == WorkerStats()
    one = WorkerInfo("w1", "host-a", 101, started)
    two = WorkerInfo("w2", "host-b", 102, started)
    await store.worker_heartbeat(one, WorkerStats({"succeeded": 2}, {"succeeded": [1, 0, 0.5]}))
    await store.worker_heartbeat(two, WorkerStats({"succeeded": 1, "failed": 1}))
    assert await store.live_workers(30) == 2
    await store.worker_heartbeat(one, WorkerStats({"succeeded": 3}, {"succeeded": [1, 1, 0.7]}))
    await store.worker_stopped("w2", WorkerStats({"succeeded": 4, "failed": 1}))
    await store.worker_stopped("w2", WorkerStats({"succeeded": 4, "failed": 1}))  # idempotent
    assert await store.live_workers(30) == 1
    # a stopped worker's counters still count: totals never go down
    total = await store.worker_stats()
    assert total.runs == {"succeeded": 7, "failed": 1}
    assert total.steps == {"succeeded": [1, 1, 0.7]}


async def test_a_cancelled_run_blocks_its_handler_until_its_worker_lets_go(store: Store) -> None:
    event = new_event()
    await store.ingest(event, resume_failed=True)
    running = await claim_one(store, "w1")
    assert await store.cancel_run(running.run_id) is not None
    (resumed,) = await store.redeliver(event.id, "resume") or []
    assert resumed != running.run_id
    # the cancelled run's worker has not noticed yet: nothing of this handler may start
    assert await claim(store, "w2") == []
    release = RunOutcome(running.run_id, "queued", refund_attempt=True)
    assert await store.finish_run(running, release) is False  # not its to finish
    assert (await claim_one(store, "w2")).run_id == resumed


async def test_a_cancelled_run_of_a_dead_worker_stops_blocking_when_its_lease_expires(
    store: Store,
) -> None:
    event = new_event()
    await store.ingest(event, resume_failed=True)
    running = await claim_one(store, "w1", lease=SHORT_LEASE)
    await store.cancel_run(running.run_id)
    (resumed,) = await store.redeliver(event.id, "resume") or []
    assert await claim(store, "w2") == []
    assert (await wait_for_claim(store, "w2")).run_id == resumed  # once the lease expired


async def test_a_cancelled_run_still_held_keeps_its_concurrency_key(store: Store) -> None:
    k1 = new_event(concurrency_key="cus_9")
    k2 = new_event(concurrency_key="cus_9")
    for event in (k1, k2):
        await store.ingest(event, resume_failed=True)
    running = await claim_one(store, "w1")
    await store.cancel_run(running.run_id)
    assert await claim(store, "w2") == []  # w1 still runs it
    release = RunOutcome(running.run_id, "queued", refund_attempt=True)
    await store.finish_run(running, release)
    assert (await claim_one(store, "w2")).run_id == k2.runs[0].id


# -- many workers: fencing ------------------------------------------------------------------


async def test_a_reclaimed_runs_old_claim_can_write_nothing(store: Store) -> None:
    event = new_event()
    await store.ingest(event, resume_failed=True)
    stale = await claim_one(store, "w1", lease=SHORT_LEASE)
    await wait_until_due(store)
    reclaimed = await claim(store, "w2")
    assert [c.run.id for c in reclaimed] == [stale.run_id]
    # w1 was paused past its lease; now it wakes up and reports its step and its ending
    charge = step(stale.run_id, event.id, "charge", 1, ok=True, result="stale")
    assert not await store.record_step(stale, charge)
    assert not await finish(store, stale, "succeeded")
    steps = await store.load_steps(event.id, "fulfil", 0, attempts=True)
    assert steps == []  # nothing of the stale worker: no memo, no attempt
    # the new claim writes as usual
    fresh = reclaimed[0].claim("w2")
    assert await store.record_step(fresh, step(fresh.run_id, event.id, "charge", 1, ok=True))
    assert await finish(store, fresh, "succeeded")


async def test_an_expired_lease_refuses_writes_even_before_it_is_reclaimed(store: Store) -> None:
    event = new_event()
    await store.ingest(event, resume_failed=True)
    mine = await claim_one(store, "w1", lease=SHORT_LEASE)
    await wait_until_due(store)  # expired, not yet reclaimed: another worker may at any time
    assert not await store.record_step(mine, step(mine.run_id, event.id, "charge", 1, ok=True))
    assert not await finish(store, mine, "succeeded")
    assert await store.load_steps(event.id, "fulfil", 0) == []
    run = await store.get_run(mine.run_id)
    assert run is not None and run.status == "running"  # for the next claimer to take


async def test_a_cancelled_run_still_held_records_its_late_step(store: Store) -> None:
    """A sync step's thread outlived the cancel: its side effect happened, so its result
    is recorded while the worker still holds the (cancelled) run."""
    event = new_event()
    await store.ingest(event, resume_failed=True)
    mine = await claim_one(store, "w1")
    await store.cancel_run(mine.run_id)
    assert await store.record_step(mine, step(mine.run_id, event.id, "charge", 1, ok=True))
    (charge,) = await store.load_steps(event.id, "fulfil", 0)
    assert charge.status == "succeeded"


async def test_a_step_written_twice_under_one_claim_is_recorded_once(store: Store) -> None:
    """A write retried after an error whose commit was not seen adds nothing."""
    event = new_event()
    await store.ingest(event, resume_failed=True)
    mine = await claim_one(store)
    charge = step(mine.run_id, event.id, "charge", 1, ok=True, result="ch_1")
    assert await store.record_step(mine, charge)
    assert await store.record_step(mine, charge)
    (recorded,) = await store.load_steps(event.id, "fulfil", 0, attempts=True)
    assert [a.outcome for a in recorded.attempts] == ["succeeded"]
