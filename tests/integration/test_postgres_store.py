"""What only the PostgreSQL store has: NOTIFY wake-ups, migration locking, cross-machine races."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from hookline.errors import SchemaError, StoreError
from hookline.sql import queries
from hookline.store.base import NewEvent, NewRun
from hookline.store.postgres import _LOCK_SPACE_KEYS, PostgresStore

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
        await pg.wait_for_work(0.5)  # the first call may return at once (listener starting)
        started = time.monotonic()
        await pg.wait_for_work(0.3)
        assert time.monotonic() - started >= 0.25  # nothing happened: the full timeout

        waiter = asyncio.create_task(pg.wait_for_work(10))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await other.ingest(keyed_event(1, key=None), resume_failed=True)
        await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - started < 2

        waiter = asyncio.create_task(pg.wait_for_work(10))
        await asyncio.sleep(0.05)
        await other.redeliver("evt_1", "resume", T0)  # the run is queued: no new run, no NOTIFY
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await other.cancel_run("run_1", T0)
        await other.redeliver("evt_1", "resume", T0)
        await asyncio.wait_for(waiter, 5)
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
        assert [c.run.id for c in await pg.claim_runs("w1", 10, 30, T0)] == ["run_2"]
        await slow.commit()
    assert await pg.claim_runs("w2", 10, 30, T0) == []


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
        await other.execute(
            Q["lease_runs"],
            {"worker_id": "w1", "expires_at": T0 + 30, "now": T0, "ids": ["run_2"]},
        )
        claim = asyncio.create_task(pg.claim_runs("w2", 10, 30, T0))
        await asyncio.sleep(0.3)
        assert not claim.done()  # waiting for the key
        await other.commit()
    assert await asyncio.wait_for(claim, 5) == []
