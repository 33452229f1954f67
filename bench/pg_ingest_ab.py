"""PostgreSQL ingest, store only: one transaction per event vs group commit, interleaved.

The same ``PostgresStore`` writes 2.6 KB events with one run each from ``--tasks`` concurrent
callers, alternately through the one-event transaction (``_ingest_alone``: BEGIN, event,
run, notify, COMMIT — the path every ingest took before group commit) and through
``ingest`` (group commit: one statement per batch). No HTTP, no signature checks: what the
database round trips and commits cost. Each round uses a fresh database table state (new
ids); figures are events/s and the server's commits per event (``pg_stat_database``)::

    .venv/bin/python bench/pg_ingest_ab.py --admin-url postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import psycopg

from hookline.ids import new_id
from hookline.store.base import NewEvent, NewRun
from hookline.store.postgres import PostgresStore

BODY = b'{"object":"event","data":' + b'"' + b"x" * 2600 + b'"}'


def event(key: str | None = None) -> NewEvent:
    """A 2.6 KB event with one run (of concurrency key ``key``)."""
    eid = new_id("evt")
    return NewEvent(
        id=eid,
        source="stripe",
        provider_event_id=eid,
        type="invoice.paid",
        received_at=time.time(),
        headers={"content-type": "application/json"},
        body=BODY,
        runs=[NewRun(new_id("run"), "bench", 8, key)],
    )


def commits(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(row[0]) if row else 0


async def round_(
    store: PostgresStore, url: str, grouped: bool, tasks: int, each: int
) -> dict[str, float]:
    ingest = store.ingest if grouped else store._ingest_alone

    async def caller() -> None:
        for _ in range(each):
            await ingest(event(), True)

    before = commits(url)
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(tasks)))
    seconds = time.perf_counter() - started
    await asyncio.sleep(1.1)  # pg_stat counters are flushed at most once a second
    n = tasks * each
    return {"events_per_s": n / seconds, "commits_per_event": (commits(url) - before) / n}


async def main(args: argparse.Namespace) -> None:
    name = f"hookline_ab_{os.getpid()}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = args.admin_url.rsplit("/", 1)[0] + "/" + name
    store = PostgresStore(url, pool_size=10)
    await store.open()
    await store.migrate()
    try:
        for r in range(args.rounds):
            for grouped in (False, True):
                got = await round_(store, url, grouped, args.tasks, args.each)
                label = "group commit" if grouped else "one transaction per event"
                print(f"round {r + 1}  {label:<28} {got['events_per_s']:8.0f} events/s  "
                      f"{got['commits_per_event']:.3f} commits/event", flush=True)  # fmt: skip
    finally:
        await store.close()
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tasks", type=int, default=64, help="concurrent callers")
    parser.add_argument("--each", type=int, default=50, help="events per caller per round")
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
