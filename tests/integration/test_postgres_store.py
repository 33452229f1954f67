"""What only the PostgreSQL store has: NOTIFY wake-ups, migration locking, cross-machine races."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import psycopg
import pytest

from hookline.errors import SchemaError, StoreError
from hookline.sql import queries
from hookline.store.base import Claim, ClaimedRun, NewEvent, NewRun, RunOutcome, StepOutcome
from hookline.store.postgres import _LOCK_SPACE_KEYS, PostgresStore, channel

pytestmark = pytest.mark.postgres
Q = queries("postgres")
T0 = 1_700_000_000.0


def keyed_event(n: int, key: str | None = "cus_1") -> NewEvent:
    return NewEvent(
        id=f"evt_{n}",
        source="stripe",
        provider_event_id=f"pe_{n}",
        type="t",
        received_at=T0,
        headers={},
        body=b"{}",
        runs=[NewRun(f"run_{n}", "fulfil", 3, key)],
    )


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pg_url)
    await store.open()
    yield store
    await store.close()


async def test_wait_for_work_wakes_on_ingest_and_redeliver(pg: PostgresStore, pg_url: str) -> None:
    other = PostgresStore(pg_url)  # another process, e.g. `hookline serve`
    await other.open()
    try:
        assert await pg.wait_for_work(["fulfil"], 10)  # returns once the listener is up
        assert await pg.wait_for_work(["fulfil"], 0.3) is False  # nothing happened

        waiter = asyncio.create_task(pg.wait_for_work(["fulfil"], 10))
        await asyncio.sleep(0.05)
        await other.ingest(keyed_event(1, key=None), resume_failed=True)
        assert await asyncio.wait_for(waiter, 5) is True

        waiter = asyncio.create_task(pg.wait_for_work(["fulfil"], 10))
        await asyncio.sleep(0.05)
        await other.redeliver("evt_1", "resume")  # the run is queued: no new run, no NOTIFY
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await other.cancel_run("run_1")
        await other.redeliver("evt_1", "resume")
        assert await asyncio.wait_for(waiter, 5) is True
    finally:
        await other.close()


async def test_concurrent_migrations_take_turns(pg_empty_url: str) -> None:
    stores = [PostgresStore(pg_empty_url) for _ in range(4)]
    for store in stores:
        await store.open()
    try:
        with pytest.raises(SchemaError):
            await stores[0].check_ready()
        versions = await asyncio.gather(*(store.migrate() for store in stores))
        assert len(set(versions)) == 1 and versions[0] >= 1
        await stores[0].check_ready()
    finally:
        for store in stores:
            await store.close()


async def test_an_unreachable_server_is_a_store_error() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1)
    with pytest.raises(StoreError):
        await store.open()


async def test_a_run_committed_late_waits_for_the_running_run_of_its_key(
    pg: PostgresStore, pg_url: str
) -> None:
    """Sequence order is not commit order: an earlier seq may become visible after a later
    run of its key started. It must wait for that run all the same."""
    async with await psycopg.AsyncConnection.connect(pg_url) as slow:
        # an ingest that took its seq first but commits last
        await slow.execute(
            Q["insert_event"],
            {
                "id": "evt_1",
                "source": "stripe",
                "provider_event_id": "pe_1",
                "type": "t",
                "status": "queued",
                "received_at": T0,
                "headers": "{}",
                "body": b"{}",
                "body_sha256": None,
            },
        )
        await slow.execute(
            Q["insert_run"],
            {
                "id": "run_1",
                "event_id": "evt_1",
                "handler": "fulfil",
                "generation": 0,
                "max_attempts": 3,
                "now": T0,
                "concurrency_key": "cus_1",
            },
        )
        await pg.ingest(keyed_event(2), resume_failed=True)
        assert [c.run.id for c in await pg.claim_runs("w1", ["fulfil"], 10, 30)] == ["run_2"]
        await slow.commit()
    assert await pg.claim_runs("w2", ["fulfil"], 10, 30) == []


async def test_a_claimer_waits_for_a_concurrent_claim_of_the_same_key(
    pg: PostgresStore, pg_url: str
) -> None:
    """Another claimer has started run_2 of the key but not committed yet: a claim of
    run_1 (earlier, visible) must wait for it and then see it running."""
    await pg.ingest(keyed_event(1), resume_failed=True)
    await pg.ingest(keyed_event(2), resume_failed=True)
    async with await psycopg.AsyncConnection.connect(pg_url) as other:
        # what a claimer that could not yet see run_1 does (see the test above)
        await other.execute(
            Q["advisory_xact_lock"],
            {"space": _LOCK_SPACE_KEYS, "handler": "fulfil", "key": "cus_1"},
        )
        row = await (await other.execute(Q["now"])).fetchone()
        assert row is not None
        await other.execute(
            Q["lease_runs"], {"worker_id": "w1", "lease": 30, "now": row[0], "ids": ["run_2"]}
        )
        claim = asyncio.create_task(pg.claim_runs("w2", ["fulfil"], 10, 30))
        await asyncio.sleep(0.3)
        assert not claim.done()  # waiting for the key
        await other.commit()
    assert await asyncio.wait_for(claim, 5) == []


async def test_a_worker_is_woken_only_by_runs_it_can_take(pg: PostgresStore, pg_url: str) -> None:
    other = PostgresStore(pg_url)  # `hookline serve` on another machine
    await other.open()
    try:
        # the first call returns once the listener is connected (a spurious wake-up)
        assert await pg.wait_for_work(["audit", "other"], 10) is True
        waiter = asyncio.create_task(pg.wait_for_work(["audit", "other"], 0.5))
        await other.ingest(keyed_event(1, key=None), resume_failed=True)  # handler "fulfil"
        assert await waiter is False  # a run of a handler it has not loaded: no wake-up
        waiter = asyncio.create_task(pg.wait_for_work(["audit", "other"], 10))
        await asyncio.sleep(0.05)
        audit = NewEvent(
            "evt_a", "stripe", "pe_a", "t", T0, {}, b"{}", [NewRun("run_a", "audit", 3)]
        )
        await other.ingest(audit, resume_failed=True)
        assert await asyncio.wait_for(waiter, 5) is True
    finally:
        await other.close()


async def test_the_pool_size_and_statement_timeout_come_from_the_settings(pg_url: str) -> None:
    from hookline.config import StorageConfig
    from hookline.store import open_store

    store = open_store(StorageConfig(url=pg_url, pool_size=3, statement_timeout_seconds=0.2))
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        assert store._pool is not None and store._pool.max_size == 3

        async def slow(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
            await conn.execute("SELECT pg_sleep(2)")

        with pytest.raises(StoreError, match="QueryCanceled"):
            await store._run(slow, transaction=False)
    finally:
        await store.close()


def plain_events(prefix: str, n: int) -> list[NewEvent]:
    return [
        NewEvent(f"evt_{prefix}{i}", "stripe", f"pe_{prefix}{i}", "t", T0, {}, b"{}",
                 [NewRun(f"run_{prefix}{i}", "fulfil", 3)])
        for i in range(n)
    ]  # fmt: skip


def step(claimed: ClaimedRun, name: str, result: object) -> StepOutcome:
    run = claimed.run
    return StepOutcome(run.id, run.event_id, run.handler, run.generation, name, 0, 1, T0, T0,
                       True, json.dumps(result), None, None)  # fmt: skip


async def test_step_records_of_concurrent_runs_share_commits_and_a_stale_claim_writes_nothing(
    pg: PostgresStore,
) -> None:
    for event in plain_events("s", 8):
        await pg.ingest(event, resume_failed=False)
    claimed = await pg.claim_runs("w1", ["fulfil"], 8, 60)
    assert len(claimed) == 8
    assert not any(c.has_memo for c in claimed)  # first attempts: the memo is not read
    claims = [c.claim("w1") for c in claimed]
    claims[0] = Claim(claimed[0].run.id, "w1", claimed[0].token + 1)  # no claim holds it
    batches = pg.writes.batches
    written = await asyncio.gather(
        *(pg.record_step(claim, step(c, "charge", n)) for n, (claim, c) in
          enumerate(zip(claims, claimed, strict=True)))
    )  # fmt: skip
    assert written == [False] + [True] * 7
    # the first write goes at once; the seven queued meanwhile share the next statement
    assert pg.writes.batches - batches == 2
    for n, c in enumerate(claimed):
        steps = await pg.load_steps(c.run.event_id, "fulfil", 0, attempts=True)
        if n == 0:
            assert steps == []  # refused: neither the attempt nor the memo
        else:
            assert [(s.name, s.result, len(s.attempts)) for s in steps] == [("charge", n, 1)]
    # the same records again (a retry whose answer was lost): still one attempt each
    again = await asyncio.gather(*(pg.record_step(claims[n], step(claimed[n], "charge", n))
                                   for n in range(1, 8)))  # fmt: skip
    assert again == [True] * 7
    (recorded,) = await pg.load_steps(claimed[1].run.event_id, "fulfil", 0, attempts=True)
    assert len(recorded.attempts) == 1


async def test_step_records_and_endings_of_concurrent_runs_share_one_transaction(
    pg: PostgresStore,
) -> None:
    """One batcher for both kinds of a worker's writes: what queued while a batch was in
    flight, step records and endings alike, goes in the next transaction (one commit)."""
    for event in plain_events("m", 4):
        await pg.ingest(event, resume_failed=False)
    first, stepping, ending, stale = await pg.claim_runs("w1", ["fulfil"], 4, 60)
    batches, items = pg.writes.batches, pg.writes.items
    written = await asyncio.gather(
        pg.record_step(first.claim("w1"), step(first, "charge", 0)),  # in flight at once
        pg.record_step(stepping.claim("w1"), step(stepping, "charge", 1)),
        pg.finish_run(ending.claim("w1"), RunOutcome(ending.run.id, "succeeded")),
        pg.record_step(Claim(stale.run.id, "w1", stale.token + 1), step(stale, "charge", 2)),
    )
    assert written == [True, True, True, False]
    assert (pg.writes.batches - batches, pg.writes.items - items) == (2, 4)
    (recorded,) = await pg.load_steps(stepping.run.event_id, "fulfil", 0, attempts=True)
    assert (recorded.name, recorded.result, len(recorded.attempts)) == ("charge", 1, 1)
    assert await pg.load_steps(stale.run.event_id, "fulfil", 0, attempts=True) == []
    ended = await pg.get_event(ending.run.event_id)
    assert ended is not None and ended.summary.status == "succeeded"


async def test_a_batch_of_step_records_and_endings_and_a_heartbeat_never_deadlock(
    pg: PostgresStore, pg_url: str
) -> None:
    """A batch locks all its runs in one id order, as a heartbeat does. Its step records
    and endings each lock theirs in id order, but one kind after the other: the step-run
    run_d1 first, then the ending's run_d0. A heartbeat holding run_d0 and waiting for
    run_d1 would then deadlock with it (found after deadlock_timeout, 1 s, then retried)."""
    for event in plain_events("d", 2):
        await pg.ingest(event, resume_failed=False)
    ending, stepping = sorted(await pg.claim_runs("w1", ["fulfil"], 2, 60), key=lambda c: c.run.id)
    async with await psycopg.AsyncConnection.connect(pg_url) as blocker:
        # holds run_d0 so that the heartbeat queues for it first, then the batch
        await blocker.execute("SELECT 1 FROM runs WHERE id = %s FOR SHARE", (ending.run.id,))
        beat = asyncio.create_task(pg.heartbeat([ending.claim("w1"), stepping.claim("w1")], 60))
        await asyncio.sleep(0.3)
        batch = asyncio.create_task(
            pg._write_batch(
                [
                    (ending.claim("w1"), RunOutcome(ending.run.id, "succeeded")),
                    (stepping.claim("w1"), step(stepping, "charge", 1)),
                ]
            )
        )
        await asyncio.sleep(0.3)
        assert not beat.done() and not batch.done()
        await blocker.rollback()
    loop = asyncio.get_running_loop()
    released = loop.time()
    held = await asyncio.wait_for(beat, 5)
    written = await asyncio.wait_for(batch, 5)
    assert loop.time() - released < 0.7  # no deadlock (its detection alone takes 1 s)
    assert held == {ending.run.id: "running", stepping.run.id: "running"}
    assert written == [True, True]


async def test_a_batch_takes_whole_seconds_beside_fractions(pg: PostgresStore) -> None:
    """A delay of whole seconds (ctx.sleep(5)) is an int: beside a float in one array it
    must not fail the batch (which would send every write of it alone)."""
    for event in plain_events("i", 2):
        await pg.ingest(event, resume_failed=False)
    first, second = await pg.claim_runs("w1", ["fulfil"], 2, 60)
    endings = [
        (first.claim("w1"), RunOutcome(first.run.id, "queued", delay=5, refund_attempt=True)),
        (second.claim("w1"), RunOutcome(second.run.id, "retrying", delay=0.5, error="x")),
    ]
    assert await pg._write_batch(endings) == [True, True]


async def test_endings_of_concurrent_runs_share_a_transaction_and_keep_their_answers(
    pg: PostgresStore,
) -> None:
    for event in plain_events("f", 5):
        await pg.ingest(event, resume_failed=False)
    claimed = await pg.claim_runs("w1", ["fulfil"], 5, 60)
    done, retried, stale, cancelled, memo = claimed
    assert await pg.record_step(memo.claim("w1"), step(memo, "charge", 1))
    assert await pg.cancel_run(cancelled.run.id) is not None
    endings = [
        (done.claim("w1"), RunOutcome(done.run.id, "succeeded", result_json="1")),
        (retried.claim("w1"), RunOutcome(retried.run.id, "retrying", error="boom")),
        (Claim(stale.run.id, "w1", stale.token + 1), RunOutcome(stale.run.id, "succeeded")),
        (cancelled.claim("w1"), RunOutcome(cancelled.run.id, "succeeded")),
        (memo.claim("w1"), RunOutcome(memo.run.id, "queued", refund_attempt=True)),
    ]
    kept = await asyncio.gather(*(pg.finish_run(claim, outcome) for claim, outcome in endings))
    assert kept == [True, True, False, False, True]
    status = {c.run.id: (await pg.get_run(c.run.id)) for c in claimed}
    assert {run_id: run.status for run_id, run in status.items() if run} == {
        done.run.id: "succeeded",
        retried.run.id: "retrying",
        stale.run.id: "running",  # still its real claim's
        cancelled.run.id: "cancelled",
        memo.run.id: "queued",
    }
    events = {c.run.id: await pg.get_event(c.run.event_id) for c in claimed}
    assert {run_id: e.summary.status for run_id, e in events.items() if e} == {
        done.run.id: "succeeded",
        retried.run.id: "retrying",
        stale.run.id: "running",
        cancelled.run.id: "cancelled",
        memo.run.id: "queued",
    }
    async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT id, lease_owner FROM runs WHERE id = ANY(%s)", ([cancelled.run.id],)
        )
        assert await cur.fetchall() == [(cancelled.run.id, None)]  # let go by its ending
    # claimed again: the run with a recorded step says so, the retried one has none
    again = {c.run.id: c for c in await pg.claim_runs("w2", ["fulfil"], 5, 60)}
    assert set(again) == {retried.run.id, memo.run.id}
    assert again[memo.run.id].has_memo and not again[retried.run.id].has_memo


@pytest.mark.parametrize("handler", ["fulfil", "app.handlers:on_code[github:push]", "élan ✓"])
async def test_the_channel_computed_in_sql_is_the_one_workers_listen_to(
    pg: PostgresStore, handler: str
) -> None:
    async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as conn:
        cur = await conn.execute(Q["channel_of"], {"handler": handler})
        assert await cur.fetchone() == (channel(handler),)


async def test_the_ending_of_a_keyed_run_wakes_its_handler(pg: PostgresStore, pg_url: str) -> None:
    await pg.ingest(keyed_event(1), resume_failed=False)
    await pg.ingest(keyed_event(2), resume_failed=False)
    (first,) = await pg.claim_runs("w1", ["fulfil"], 5, 60)
    listener = PostgresStore(pg_url)
    await listener.open()
    try:
        assert await listener.wait_for_work(["fulfil"], 10)  # returns once the listener is up
        assert await listener.wait_for_work(["fulfil"], 0.3) is False  # nothing happened
        waiting = asyncio.create_task(listener.wait_for_work(["fulfil"], 10))
        await asyncio.sleep(0.05)
        assert await pg.finish_run(first.claim("w1"), RunOutcome(first.run.id, "succeeded"))
        assert await asyncio.wait_for(waiting, 5) is True  # the key's next run may start
    finally:
        await listener.close()


def plan_nodes(node: dict[str, object]) -> list[dict[str, object]]:
    children = node.get("Plans", [])
    assert isinstance(children, list)
    return [node, *(n for child in children for n in plan_nodes(child))]


async def test_a_claim_reads_a_backlog_in_claim_order_instead_of_sorting_it(
    pg: PostgresStore,
) -> None:
    for n in range(300):
        await pg.ingest(keyed_event(1000 + n, key=None), resume_failed=False)
    params = {"handlers": ["fulfil"], "limit": 8, "worker_id": "w0", "lease": 60}
    async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as conn:
        for mode in ("force_custom_plan", "force_generic_plan"):  # as prepared, too
            await conn.execute(f"SET plan_cache_mode = {mode}")
            cur = await conn.execute("EXPLAIN (FORMAT JSON) " + Q["claim_runs"], params)
            row = await cur.fetchone()
            assert row is not None
            nodes = plan_nodes(row[0][0]["Plan"])
            locks = [n for n in nodes if n["Node Type"] == "LockRows"]
            assert locks, nodes
            # what the runs are locked from comes straight from the index, in claim order:
            # no sort below the lock (it would read and probe every due run first)
            for lock in locks:
                assert all(n["Node Type"] != "Sort" for n in plan_nodes(lock)), lock
    claimed = await pg.claim_runs("w1", ["fulfil"], 8, 60)
    assert [c.run.id for c in claimed] == [f"run_{1000 + n}" for n in range(8)]  # FIFO
