"""The PostgreSQL claim: two round trips, one holder per key under concurrent claimers, the
event status it leaves, and a plan that stays on indexes when made on empty tables."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import pq

from hookline.errors import StoreError
from hookline.sql import queries
from hookline.store.base import NewEvent, NewRun, RunOutcome
from hookline.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres
Q = queries("postgres")
T0 = 1_700_000_000.0

# The status an event must show, derived from its runs now (the definition the refreshes use).
DERIVED = "SELECT id, status, hookline_event_status(id) FROM events ORDER BY id"


def event(n: int, key: str | None = None, handlers: tuple[str, ...] = ("fulfil",)) -> NewEvent:
    return NewEvent(
        id=f"evt_{n:03}",
        source="stripe",
        provider_event_id=f"pe_{n}",
        type="t",
        received_at=T0,
        headers={},
        body=b"{}",
        runs=[NewRun(f"run_{n:03}_{h}", h, 3, key) for h in handlers],
    )


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pg_url, pool_size=1)  # one connection: its messages can be traced
    await store.open()
    yield store
    await store.close()


async def stale_statuses(url: str) -> list[tuple[str, str, str]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows = await (await conn.execute(DERIVED)).fetchall()
    return [(i, stored, derived) for i, stored, derived in rows if stored != derived]


async def traced_claim(store: PostgresStore, limit: int) -> tuple[int, bytes]:
    """Claim with libpq tracing the connection's protocol messages: (runs, trace)."""
    assert store._pool is not None
    with tempfile.TemporaryFile() as trace:
        async with store._pool.connection() as conn:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            claimed = await store.claim_runs("w1", ["fulfil"], limit, 60)
        finally:
            async with store._pool.connection() as conn:
                conn.pgconn.untrace()
        trace.seek(0)
        return len(claimed), trace.read()


async def test_a_claim_without_concurrency_keys_is_two_round_trips(
    pg: PostgresStore, pg_url: str
) -> None:
    for n in range(5):
        await pg.ingest(event(n), resume_failed=False)
    got, trace = await traced_claim(pg, 3)
    assert got == 3
    lines = [line for line in trace.decode().splitlines() if line[:1] in ("F", "B")]
    sent = [line.split()[2] for line in lines if line.startswith("F")]
    # a round trip: messages sent, then the answers waited for (a B line after an F line).
    # BEGIN and claim_runs, then the events' lock, their status and COMMIT (nine before)
    trips = sum(1 for a, b in itertools.pairwise(lines) if a[0] == "F" and b[0] == "B")
    assert trips == 2, lines
    assert sent.count("Execute") <= 7, sent
    assert await stale_statuses(pg_url) == []
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        rows = await (
            await conn.execute("SELECT status, count(*) FROM events GROUP BY status ORDER BY 1")
        ).fetchall()
    assert rows == [("queued", 2), ("running", 3)]


async def test_concurrent_claimers_take_turns_per_key_and_keep_event_status_true(
    pg_url: str,
) -> None:
    """Four stores (each its own process, in effect) claim runs of few keys at once, and of
    no key; no key ever has two runs running, each key's runs run in their order, and every
    event shows the status its runs give it after each round."""
    loader = PostgresStore(pg_url)
    await loader.open()
    keys = ["k1", "k2", "k3"]
    for n in range(24):
        key = keys[n % 4] if n % 4 < 3 else None
        await loader.ingest(event(n, key, ("fulfil", "audit")), resume_failed=False)
    stores = [PostgresStore(pg_url, pool_size=2) for _ in range(4)]
    for store in stores:
        await store.open()
    order: dict[str, list[str]] = {}
    try:
        for _ in range(200):
            claims = await asyncio.gather(
                *(s.claim_runs(f"w{i}", ["fulfil", "audit"], 4, 60) for i, s in enumerate(stores))
            )
            claimed = [(i, c) for i, batch in enumerate(claims) for c in batch]
            if not claimed and not await loader.has_due_runs(["fulfil", "audit"]):
                break
            held = [(c.run.handler, c.run.concurrency_key) for _, c in claimed]
            keyed = [k for k in held if k[1] is not None]
            assert len(keyed) == len(set(keyed)), keyed  # one holder per (handler, key)
            assert len({c.run.id for _, c in claimed}) == len(claimed)  # one holder per run
            assert await stale_statuses(pg_url) == []
            for _, c in claimed:
                if c.run.concurrency_key is not None:
                    order.setdefault(f"{c.run.handler}/{c.run.concurrency_key}", []).append(
                        c.run.id
                    )
            await asyncio.gather(
                *(
                    stores[i].finish_run(c.claim(f"w{i}"), RunOutcome(c.run.id, "succeeded"))
                    for i, c in claimed
                )
            )
            assert await stale_statuses(pg_url) == []
        else:
            raise AssertionError("the runs were not all claimed")
        assert order and all(ids == sorted(ids) for ids in order.values()), order
        assert sum(len(ids) for ids in order.values()) == 18 * 2
    finally:
        for store in stores:
            await store.close()
        await loader.close()


async def test_a_reclaimed_run_that_is_not_its_handlers_newest_leaves_the_status_alone(
    pg: PostgresStore, pg_url: str
) -> None:
    """An older run claimed beside a newer run of its (event, handler) does not count for the
    event's status: the claim must not turn the event 'running'."""
    await pg.ingest(event(1), resume_failed=False)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        # a newer run of the same (event, handler) that already succeeded
        await conn.execute(
            "INSERT INTO runs (id, event_id, handler, generation, status, attempts,"
            " max_attempts, available_at, created_at, updated_at)"
            " VALUES ('run_new', 'evt_001', 'fulfil', 1, 'succeeded', 1, 3, 0, 0, 0)"
        )
        await conn.execute("UPDATE events SET status = 'succeeded' WHERE id = 'evt_001'")
    (claimed,) = await pg.claim_runs("w1", ["fulfil"], 5, 60)
    assert claimed.run.id == "run_001_fulfil"
    assert await stale_statuses(pg_url) == []
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        row = await (await conn.execute("SELECT status FROM events")).fetchone()
    assert row == ("succeeded",)


async def test_the_claims_generic_plan_made_on_empty_tables_probes_indexes_only(
    pg: PostgresStore,
) -> None:
    """claim_runs runs with its generic plan, kept for the connection's life: made while the
    tables are empty it must not read a table sequentially (it would as they grow)."""
    params = {"handlers": ["fulfil"], "limit": 16, "worker_id": "w0", "lease": 60}
    async with await psycopg.AsyncConnection.connect(pg.url) as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        cur = await conn.execute("EXPLAIN (FORMAT JSON) " + Q["claim_runs"], params)
        row = await cur.fetchone()
        assert row is not None
    nodes = plan_nodes(row[0][0]["Plan"])
    scans = {(n["Node Type"], n.get("Relation Name")) for n in nodes if "Relation Name" in n}
    assert scans and all(kind != "Seq Scan" for kind, _ in scans), scans


def plan_nodes(node: dict[str, object]) -> list[dict[str, object]]:
    children = node.get("Plans", [])
    assert isinstance(children, list)
    return [node, *(n for child in children for n in plan_nodes(child))]


async def test_a_batch_of_endings_is_one_round_trip(pg: PostgresStore, pg_url: str) -> None:
    for n in range(3):
        await pg.ingest(event(n), resume_failed=False)
    claimed = await pg.claim_runs("w1", ["fulfil"], 3, 60)
    assert pg._pool is not None
    items = [(c.claim("w1"), RunOutcome(c.run.id, "succeeded")) for c in claimed]
    with tempfile.TemporaryFile() as trace:
        async with pg._pool.connection() as conn:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            assert await pg._write_batch(items) == [True, True, True]
        finally:
            async with pg._pool.connection() as conn:
                conn.pgconn.untrace()
        trace.seek(0)
        lines = [line for line in trace.read().decode().splitlines() if line[:1] in ("F", "B")]
    trips = sum(1 for a, b in itertools.pairwise(lines) if a[0] == "F" and b[0] == "B")
    assert trips == 1, lines  # BEGIN, the endings, their events, wake-ups, COMMIT
    assert await stale_statuses(pg_url) == []


async def test_a_claim_that_fails_midway_leases_nothing_and_leaves_the_connection_idle(
    pg: PostgresStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second round trip fails (after claim_runs leased the runs): the transaction is
    rolled back, the runs stay queued, and the pooled connection is usable at once."""
    for n in range(3):
        await pg.ingest(event(n), resume_failed=False)
    failing = "SELECT 1 / 0 WHERE %(run_ids)s::text[] IS NOT NULL"
    monkeypatch.setitem(Q, "claimed_events_running", failing)
    with pytest.raises(StoreError, match="DivisionByZero"):
        await pg.claim_runs("w1", ["fulfil"], 3, 60)
    monkeypatch.undo()
    assert pg._pool is not None
    async with pg._pool.connection() as conn:
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        rows = await (await conn.execute("SELECT status, fence FROM runs")).fetchall()
    assert rows == [("queued", 0)] * 3
    assert len(await pg.claim_runs("w1", ["fulfil"], 3, 60)) == 3
    assert await stale_statuses(pg_url) == []
