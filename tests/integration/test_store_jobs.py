"""``Store.enqueue_job`` / ``get_job``: the contract, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import json
import time

from hookline.store.base import (
    EventFilter,
    NewJob,
    NewRun,
    RunOutcome,
    StepOutcome,
    Store,
)
from tests.integration.conftest import OpenStore
from tests.integration.test_store_contract import new_event

T0 = 1_700_000_000.0
LEASE = 30.0
_counter = iter(range(1_000_000))


def new_job(
    name: str = "generate-report",
    *,
    key: str | None = None,
    payload: object = None,
    fingerprint: str | None = None,
    at: float = T0,
    run_at: float | None = None,
    handler: str = "reports:generate",
) -> NewJob:
    n = next(_counter)
    body = json.dumps({"report": n} if payload is None else payload).encode()
    return NewJob(
        id=f"job_{n:06d}",
        name=name,
        payload=body,
        created_at=at,
        run_at=at if run_at is None else run_at,
        runs=[NewRun(f"run_j{n:06d}", handler, 3)],
        idempotency_key=key,
        fingerprint=fingerprint if fingerprint is not None else (f"fp-{body!r}" if key else None),
        headers={"content-type": "application/json", "authorization": "[redacted]"},
    )


HANDLERS = ["reports:generate"]


def near_now(at: float) -> bool:
    """A time the store set from its own clock (the database's, or this machine's)."""
    return abs(at - time.time()) < 60


async def fail_job(store: Store, worker: str = "w1", now: float = T0) -> str:
    claimed = await store.claim_runs(worker, HANDLERS, 10, LEASE)
    assert len(claimed) == 1
    run, claim = claimed[0].run, claimed[0].claim(worker)
    assert await store.record_step(
        claim,
        StepOutcome(run.id, run.event_id, run.handler, run.generation, "render", 0, 1,
                    now, now, True, '"pdf"', None, None),
    )  # fmt: skip
    assert await store.finish_run(claim, RunOutcome(run.id, "failed", error="boom"))
    return run.id


async def test_a_job_is_stored_as_an_event_of_source_jobs(store: Store) -> None:
    job = new_job(key="k-1", at=T0, run_at=T0 + 300)
    result = await store.enqueue_job(job)
    assert (result.job_id, result.outcome, result.status) == (job.id, "created", "queued")
    assert result.run_ids == (job.runs[0].id,)

    record = await store.get_job(job.id)
    assert record is not None
    assert record.summary.source == "jobs" and record.summary.type == "generate-report"
    assert record.summary.provider_event_id == "generate-report/k-1"
    assert (record.run_at, record.idempotency_key) == (T0 + 300, "k-1")  # as asked
    # due by the store's clock: the delay asked for (run_at - created_at) after its now
    (run,) = record.runs
    assert (run.handler, run.status) == ("reports:generate", "queued")
    assert near_now(run.available_at - 300)
    event = await store.get_event(job.id)
    assert event is not None and event.body == job.payload
    assert event.headers["authorization"] == "[redacted]"
    listed = await store.list_events(EventFilter(source="jobs"), 10, None)
    assert [e.id for e in listed] == [job.id]


async def test_every_run_of_a_job_is_stored_due_at_its_delay(store: Store) -> None:
    # SQLite stores a new key's job on a fast path of its own, PostgreSQL in one statement
    # plus one per further run: both must give each run, each due after the delay.
    job = new_job(key="k-runs", at=T0, run_at=T0 + 300)
    second = NewRun(job.runs[0].id + "b", "reports:archive", 2, "tenant-1")
    job = NewJob(**{**{f: getattr(job, f) for f in job.__slots__}, "runs": [*job.runs, second]})
    result = await store.enqueue_job(job)
    assert result.outcome == "created" and result.run_ids == (job.runs[0].id, second.id)
    record = await store.get_job(job.id)
    assert record is not None
    runs = {run.id: run for run in record.runs}
    assert set(runs) == {job.runs[0].id, second.id}
    assert (runs[second.id].handler, runs[second.id].max_attempts) == ("reports:archive", 2)
    assert runs[second.id].concurrency_key == "tenant-1"
    assert all(run.status == "queued" and near_now(run.available_at - 300) for run in runs.values())
    again = await store.enqueue_job(new_job(key="k-runs", payload=json.loads(job.payload)))
    assert (again.job_id, again.outcome) == (job.id, "replayed")


async def test_a_delayed_job_is_not_claimed_before_its_time(store: Store) -> None:
    later = new_job(at=T0, run_at=T0 + 300)
    await store.enqueue_job(later)
    assert not await store.has_due_runs(HANDLERS)
    assert await store.claim_runs("w1", HANDLERS, 10, LEASE) == []
    soon = new_job(at=T0, run_at=T0 + 1)  # the clocks of T0 do not matter: the delay does
    await store.enqueue_job(soon)
    assert await store.claim_runs("w1", HANDLERS, 10, LEASE) == []
    deadline = time.monotonic() + 15
    while not (claimed := await store.claim_runs("w1", HANDLERS, 10, LEASE)):
        assert time.monotonic() < deadline, "the job due in 1 s was never claimable"
        await asyncio.sleep(0.05)
    assert [c.run.event_id for c in claimed] == [soon.id]
    assert claimed[0].event.source == "jobs" and claimed[0].body == soon.payload


async def test_without_a_key_every_job_is_new(store: Store) -> None:
    first = await store.enqueue_job(new_job(payload={"same": 1}))
    second = await store.enqueue_job(new_job(payload={"same": 1}))
    assert first.outcome == second.outcome == "created" and first.job_id != second.job_id


async def test_same_key_and_payload_replays_the_job(store: Store) -> None:
    first = await store.enqueue_job(new_job(key="k", fingerprint="fp"))
    again = await store.enqueue_job(new_job(key="k", fingerprint="fp"))
    assert (again.job_id, again.outcome, again.status, again.run_ids) == (
        first.job_id, "replayed", "queued", ()
    )  # fmt: skip
    record = await store.get_job(first.job_id)
    assert record is not None and len(record.runs) == 1
    assert await store.get_job(new_job().id) is None  # the replayed request stored nothing


async def test_same_key_other_payload_is_refused_and_changes_nothing(store: Store) -> None:
    first = await store.enqueue_job(new_job(key="k", fingerprint="fp-a"))
    other = await store.enqueue_job(new_job(key="k", fingerprint="fp-b"))
    assert (other.job_id, other.outcome, other.run_ids) == (first.job_id, "key_reused", ())
    record = await store.get_job(first.job_id)
    assert record is not None and len(record.runs) == 1


async def test_keys_are_per_job_name(store: Store) -> None:
    a = await store.enqueue_job(new_job("a", key="k", fingerprint="fp"))
    b = await store.enqueue_job(new_job("b", key="k", fingerprint="fp"))
    assert a.outcome == b.outcome == "created" and a.job_id != b.job_id


async def test_a_failed_job_is_resumed_by_the_same_request(store: Store) -> None:
    first = await store.enqueue_job(new_job(key="k", fingerprint="fp"))
    failed_run = await fail_job(store)
    record = await store.get_job(first.job_id)
    assert record is not None and record.summary.status == "failed"

    again = await store.enqueue_job(new_job(key="k", fingerprint="fp", at=T0 + 10))
    assert (again.job_id, again.outcome, again.status) == (first.job_id, "resumed", "queued")
    assert len(again.run_ids) == 1 and again.run_ids[0] != failed_run
    record = await store.get_job(first.job_id)
    assert record is not None and record.summary.status == "queued"
    resumed = record.runs[-1]
    assert (resumed.id, resumed.generation) == (again.run_ids[0], 0)
    assert near_now(resumed.available_at)  # due at once, by the store's clock
    # same generation: the step that succeeded is the memo of the new run too
    steps = await store.load_steps(first.job_id, resumed.handler, resumed.generation)
    assert [(s.name, s.status, s.result) for s in steps] == [("render", "succeeded", "pdf")]
    # resumed once: the same request again while it is queued replays it
    third = await store.enqueue_job(new_job(key="k", fingerprint="fp", at=T0 + 20))
    assert (third.outcome, third.status, third.run_ids) == ("replayed", "queued", ())
    # a different payload never resumes it
    other = await store.enqueue_job(new_job(key="k", fingerprint="fp-other"))
    assert other.outcome == "key_reused"


async def test_a_succeeded_or_cancelled_job_is_replayed_not_resumed(store: Store) -> None:
    done = await store.enqueue_job(new_job(key="done", fingerprint="fp"))
    (claimed,) = await store.claim_runs("w1", HANDLERS, 10, LEASE)
    await store.finish_run(
        claimed.claim("w1"), RunOutcome(claimed.run.id, "succeeded", result_json="1")
    )
    again = await store.enqueue_job(new_job(key="done", fingerprint="fp"))
    assert (again.job_id, again.outcome, again.status) == (done.job_id, "replayed", "succeeded")

    cancelled = await store.enqueue_job(new_job(key="gone", fingerprint="fp"))
    await store.cancel_run(cancelled.run_ids[0])
    again = await store.enqueue_job(new_job(key="gone", fingerprint="fp"))
    assert (again.outcome, again.status) == ("replayed", "cancelled")


async def test_concurrent_requests_with_one_key_store_one_job(open_another: OpenStore) -> None:
    """20 requests at once, from 4 store instances (processes, machines): one job, one run."""
    stores = [await open_another() for _ in range(4)]
    jobs = [new_job(key="once", fingerprint="fp") for _ in range(20)]
    results = await asyncio.gather(*(stores[i % 4].enqueue_job(job) for i, job in enumerate(jobs)))
    created = [r for r in results if r.outcome == "created"]
    assert len(created) == 1
    assert {r.job_id for r in results} == {created[0].job_id}
    assert all(r.outcome == "replayed" for r in results if r is not created[0])
    listed = await stores[0].list_events(EventFilter(source="jobs"), 100, None)
    assert [e.id for e in listed] == [created[0].job_id]
    record = await stores[0].get_job(created[0].job_id)
    assert record is not None and len(record.runs) == 1


async def test_concurrent_resends_of_a_failed_job_resume_it_once(open_another: OpenStore) -> None:
    stores = [await open_another() for _ in range(4)]
    first = await stores[0].enqueue_job(new_job(key="k", fingerprint="fp"))
    await fail_job(stores[0])
    results = await asyncio.gather(
        *(stores[i % 4].enqueue_job(new_job(key="k", fingerprint="fp")) for i in range(12))
    )
    assert sorted(r.outcome for r in results) == ["replayed"] * 11 + ["resumed"]
    record = await stores[0].get_job(first.job_id)
    assert record is not None and len(record.runs) == 2


async def test_get_job_knows_only_jobs(store: Store) -> None:
    webhook = new_event()
    await store.ingest(webhook, resume_failed=True)
    assert await store.get_job(webhook.id) is None
    assert await store.get_job("job_missing") is None


async def test_pruning_a_job_frees_its_key(store: Store) -> None:
    old = await store.enqueue_job(new_job(key="k", fingerprint="fp", at=T0))
    (claimed,) = await store.claim_runs("w1", HANDLERS, 10, LEASE)
    await store.finish_run(claimed.claim("w1"), RunOutcome(claimed.run.id, "succeeded"))
    assert await store.prune(T0 + 1, include_failed=False) == 1
    assert await store.get_job(old.job_id) is None
    fresh = await store.enqueue_job(new_job(key="k", fingerprint="fp-new", at=T0 + 5))
    assert fresh.outcome == "created" and fresh.job_id != old.job_id
