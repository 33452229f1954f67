"""The PostgreSQL hot path runs prepared statements with generic plans (``HOT`` in
hookline.store.postgres): made once per connection, often while the tables are still
empty, and kept as they grow. Each must still probe the rows it is asked for — a plan that
reads a whole index or table would cost the backlog on every batch."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hookline.sql import queries
from hookline.store.base import NewEvent, NewRun, RunOutcome, RunRecord, StepOutcome
from hookline.store.postgres import HOT, PostgresStore

pytestmark = pytest.mark.postgres
Q = queries("postgres")
ROWS = 6000  # runs once the plans exist: a third running, a third due, a third due and keyed
BATCH = 16


def event(n: int) -> NewEvent:
    return NewEvent(
        id=f"evt_{n:03}",
        source="stripe",
        provider_event_id=f"pe_{n}",
        type="t",
        received_at=1_700_000_000.0,
        headers={},
        body=b"{}",
        runs=[NewRun(f"run_{n:03}", "fulfil", 3, None)],
    )


def step(run: RunRecord, name: str) -> StepOutcome:
    return StepOutcome(
        run_id=run.id,
        event_id=run.event_id,
        handler=run.handler,
        generation=run.generation,
        name=name,
        position=0,
        number=1,
        started_at=1.0,
        ended_at=1.0,
        succeeded=True,
        result_json="1",
        error=None,
        traceback=None,
    )


def _runs(first: int) -> list[str]:
    return [f"run_{n}" for n in range(first, first + 3 * BATCH, 3)]  # every third: running


def _events(first: int) -> list[str]:
    return [f"evt_{n}" for n in range(first, first + 3 * BATCH, 3)]


def _ending(first: int) -> dict[str, Any]:
    return {
        "ids": _runs(first),
        "fences": [1] * BATCH,
        "worker_ids": ["w1"] * BATCH,
        "statuses": ["succeeded"] * BATCH,
        "delays": [0.0] * BATCH,
        "results": ["1"] * BATCH,
        "errors": [None] * BATCH,
        "refunds": [0] * BATCH,
    }


def _steps(first: int) -> dict[str, Any]:
    return {
        "run_ids": _runs(first),
        "fences": [1] * BATCH,
        "worker_ids": ["w1"] * BATCH,
        "event_ids": _events(first),
        "handlers": ["fulfil"] * BATCH,
        "generations": [0] * BATCH,
        "names": ["second"] * BATCH,
        "positions": [1] * BATCH,
        "numbers": [1] * BATCH,
        "started_at": [1.0] * BATCH,
        "ended_at": [1.0] * BATCH,
        "outcomes": ["succeeded"] * BATCH,
        "errors": [None] * BATCH,
        "tracebacks": [None] * BATCH,
        "results": ["1"] * BATCH,
    }


# Each hot statement with the parameters of one batch (distinct rows per statement, so the
# writes of one do not change what the next one finds).
PARAMS: dict[str, dict[str, Any]] = {
    "claim_runs": {"handlers": ["fulfil"], "limit": BATCH, "worker_id": "w2", "lease": 60},
    "keyed_runs_still_free": {"ids": [f"run_{n}" for n in range(2, 3 * BATCH, 3)], "now": 1.0},
    "lease_runs": {"ids": _runs(300), "worker_id": "w1", "now": 1e10, "lease": 60.0},
    "claimed_runs_with_events": {"ids": _runs(600)},
    "lock_claimed_events": {"ids": _events(900)},
    "claimed_events_running": {"run_ids": _runs(1200)},
    "heartbeat": {"ids": _runs(1500), "fences": [1] * BATCH, "worker_id": "w1", "lease": 60},
    "lock_runs": {"ids": _runs(1650)},
    "record_steps": _steps(1800),
    "finish_runs": _ending(2100),
    "lock_events_of_runs": {"run_ids": _runs(2400)},
    "refresh_events_of_runs": {"run_ids": _runs(2700)},
}


def _populate(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO events (id, source, provider_event_id, type, status, received_at,"
        " headers, body)"
        " SELECT 'evt_' || n, 'stripe', 'pe_' || n, 't', 'queued', 0, '{}', '\\x7b7d'"
        " FROM generate_series(0, %(last)s) AS n",
        {"last": ROWS - 1},
    )
    conn.execute(
        "INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,"
        " available_at, created_at, updated_at, lease_owner, lease_expires_at, fence,"
        " concurrency_key)"
        " SELECT 'run_' || n, 'evt_' || n, 'fulfil', 0,"
        "  CASE WHEN n %% 3 = 0 THEN 'running' ELSE 'queued' END, 1, 3, 0, 0, 0,"
        "  CASE WHEN n %% 3 = 0 THEN 'w1' END,"
        "  CASE WHEN n %% 3 = 0 THEN hookline_now() + 3600 END, 1,"
        "  CASE WHEN n %% 3 = 2 THEN 'k' || n %% 500 END"
        " FROM generate_series(0, %(last)s) AS n",
        {"last": ROWS - 1},
    )
    conn.execute(
        "INSERT INTO steps (event_id, handler, generation, name, position, status, result,"
        " updated_at)"
        " SELECT 'evt_' || n, 'fulfil', 0, 'first', 0, 'succeeded', '1', 0"
        " FROM generate_series(0, %(last)s) AS n",
        {"last": ROWS - 1},
    )


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _nodes(child))]


def _rows_read(node: dict[str, Any]) -> int:
    """The rows a scan node looked at (kept or filtered out), over all its loops."""
    if not node["Node Type"].endswith("Scan") or "Relation Name" not in node:
        return 0
    seen = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
    return int(seen * node["Actual Loops"])


def test_every_hot_statement_is_covered() -> None:
    assert set(PARAMS) == HOT


def test_generic_plans_made_on_empty_tables_probe_only_the_rows_asked_for(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        names: dict[str, str] = {}
        for name, params in PARAMS.items():  # as the store does, on empty tables
            with conn.transaction():
                conn.execute(Q["hot_plans"], prepare=True)
                conn.execute(Q[name], params, prepare=True)
                row = conn.execute(
                    "SELECT name FROM pg_prepared_statements ORDER BY prepare_time DESC LIMIT 1"
                ).fetchone()
                assert row is not None
                names[name] = row[0]
        with psycopg.connect(pg_url, autocommit=True) as other:
            _populate(other)
        read: dict[str, int] = {}
        for name, params in PARAMS.items():
            order = list(dict.fromkeys(re.findall(r"%\((\w+)\)[sb]", Q[name])))
            explain = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {}({})").format(
                sql.Identifier(names[name]),
                sql.SQL(", ").join(sql.Literal(params[k]) for k in order),
            )
            with conn.transaction():
                conn.execute(Q["hot_plans"], prepare=True)
                row = conn.execute(explain).fetchone()
            assert row is not None
            nodes = _nodes(row[0][0]["Plan"])
            read[name] = max(_rows_read(n) for n in nodes)
    assert all(blocks < 600 for blocks in read.values()), read


async def test_the_store_runs_its_hot_statements_prepared_with_generic_plans(
    pg_url: str,
) -> None:
    """Claims, step records and endings are parsed and planned once per connection, not at
    every execution (planning cost more than running them)."""
    store = PostgresStore(pg_url, pool_size=1)  # one connection: its statements can be read
    await store.open()
    try:
        for n in range(3):
            await store.ingest(event(n), resume_failed=False)
            (claimed,) = await store.claim_runs("w1", ["fulfil"], 1, 60)
            claim = claimed.claim("w1")
            assert await store.record_step(claim, step(claimed.run, "first"))
            assert await store.finish_run(claim, RunOutcome(claimed.run.id, "succeeded"))
        assert store._pool is not None
        async with store._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            )
            prepared = await cur.fetchall()
    finally:
        await store.close()
    for name in ("claim_runs", "record_steps", "finish_runs", "refresh_events_of_runs"):
        marker = Q[name].splitlines()[0]  # each starts with a comment of its own
        plans = [(generic, custom) for text, generic, custom in prepared if marker in text]
        assert plans == [(3, 0)], (name, plans)


def test_the_endings_refresh_derives_statuses_inline_without_a_function_per_event(
    pg_url: str,
) -> None:
    """hookline_event_statuses is inlined into the refresh: planned once with it, each
    status a subquery, where hookline_event_status(id) was planned at every execution and
    called through the SQL-function executor per event."""
    params = {"run_ids": _runs(0)}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        _populate(conn)
        with conn.transaction():
            conn.execute(Q["hot_plans"])
            cur = conn.execute(
                "EXPLAIN (VERBOSE, FORMAT JSON) " + Q["refresh_events_of_runs"], params
            )
            row = cur.fetchone()
    assert row is not None
    plan = str(row[0])
    assert "hookline_event_status" not in plan, plan
    assert "SubPlan" in plan, plan


def test_arrays_are_sent_in_binary() -> None:
    """An array parameter in text makes the server parse it (array_in; a bytea element
    also hex-decoded): 3 % of its CPU on the hot path. Every array goes in binary."""
    text_arrays = {
        name: re.findall(r"%\(\w+\)s::\w+\[\]", query)
        for name, query in Q.items()
        if re.search(r"%\(\w+\)s::\w+\[\]", query)
    }
    assert text_arrays == {}
