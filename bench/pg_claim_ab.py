"""PostgreSQL claims, store only: the CPU one claim costs the server and the claimer.

A fresh database gets ``--events`` events with one run each; then ``--claimers`` stores
(pool of one connection each, so each has one server backend) claim them all, ``--limit``
runs per claim, until none is left. No handler runs; a connection of its own (not measured)
ends each claimed run at once, as workers would, so the runs held stay few. What is measured
is ``PostgresStore.claim_runs`` alone — the server backends' CPU (``/proc/<pid>/stat``; the
server must run on this machine) and the claimers' own CPU (``time.process_time``), per
claimed run, and the claims made. Run it on two versions of the store to compare::

    .venv/bin/python bench/pg_claim_ab.py --admin-url postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import psycopg
from loadgen import cpu_seconds
from pg_ingest_ab import event  # the same 2.6 KB events with one run

from hookline.store.postgres import PostgresStore

# what a worker's ending does to the run (its event's status is left alone: not measured)
END = """UPDATE runs SET status = 'succeeded', lease_owner = NULL, lease_expires_at = NULL
WHERE id = ANY(%(ids)s::text[])"""


async def backend_pid(store: PostgresStore) -> int:
    async def op(conn: psycopg.AsyncConnection) -> int:  # type: ignore[type-arg]
        row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        return int(row[0])

    return await store._run(op, transaction=False)


async def main(args: argparse.Namespace) -> None:
    name = f"hl_claimab_{uuid.uuid4().hex[:10]}"
    base = args.admin_url.rsplit("/", 1)[0]
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{base}/{name}"
    try:
        loader = PostgresStore(url)
        await loader.open()
        await loader.migrate()
        keys = [f"k{n}" for n in range(args.keys)] or [None]
        await asyncio.gather(
            *(loader.ingest(event(keys[n % len(keys)]), True) for n in range(args.events))
        )
        await loader.close()
        stores = [PostgresStore(url, pool_size=1) for _ in range(args.claimers)]
        for store in stores:
            await store.open()
        pids = [await backend_pid(store) for store in stores]
        claims = 0

        ender = await psycopg.AsyncConnection.connect(url, autocommit=True)

        async def claimer(store: PostgresStore, n: int) -> int:
            nonlocal claims
            got = 0
            while True:
                claimed = await store.claim_runs(f"w{n}", ["bench"], args.limit, 300)
                claims += 1
                got += len(claimed)
                if claimed:
                    await ender.execute(END, {"ids": [c.run.id for c in claimed]})
                if not claimed and not await store.has_due_runs(["bench"]):
                    return got

        server0 = sum(cpu_seconds(p) for p in pids)
        client0 = time.process_time()
        t0 = time.perf_counter()
        got = sum(await asyncio.gather(*(claimer(s, n) for n, s in enumerate(stores))))
        wall = time.perf_counter() - t0
        server = sum(cpu_seconds(p) for p in pids) - server0
        client = time.process_time() - client0
        for store in stores:
            await store.close()
        await ender.close()
        assert got == args.events, (got, args.events)
        print(
            f"claimed {got} runs in {claims} claims, {wall:.2f} s: "
            f"server {server / got * 1e6:.0f} µs/run ({server / claims * 1e6:.0f} µs/claim), "
            f"claimer {client / got * 1e6:.0f} µs/run ({client / claims * 1e6:.0f} µs/claim)"
        )
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", required=True)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--limit", type=int, default=16, help="runs per claim")
    parser.add_argument("--claimers", type=int, default=2)
    parser.add_argument("--keys", type=int, default=0, help="concurrency keys (0: none)")
    asyncio.run(main(parser.parse_args()))
