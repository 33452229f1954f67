"""Schedule tick latency: from a tick's time to its job being stored (committed).

Starts ``--processes`` ``hookline serve`` processes (default 2, as in a scale-out) on one
store, SQLite and/or PostgreSQL, with ``--schedules`` schedules of ``every = "1s"``
(overlap ``allow``: every tick stores a job) and one worker each that runs the jobs. Each
process logs a ``schedule tick`` line right after the transaction holding the tick's
record and its job committed; latency = that line's time - the tick's time. Optionally
``--load`` threads post signed webhooks the whole time, so the ticks share the store
with ingestion.

    .venv/bin/python bench/schedule_latency.py [--backend both] [--seconds 30]
        [--schedules 5] [--processes 2] [--load 0]
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.clients import post_stripe  # noqa: E402
from tests.support.pg import ADMIN_URL, database_url  # noqa: E402
from tests.support.server import HooklineProcess, base_config  # noqa: E402


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def latencies(server: HooklineProcess, since: float, until: float) -> list[float]:
    """Tick → stored, for the ticks in [since, until] this process recorded."""
    found = []
    for line in server.logs().splitlines():
        if line.startswith("{") and '"schedule tick"' in line:
            entry = json.loads(line)
            tick = ts(entry["tickAt"])
            if entry["outcome"] == "fired" and since <= tick <= until:
                found.append(ts(entry["ts"]) - tick)
    return found


def load(server: HooklineProcess, stop: threading.Event, sent: list[int]) -> None:
    with httpx.Client(timeout=10) as client:
        n = 0
        while not stop.is_set():
            post_stripe(server, f"evt_load_{threading.get_ident()}_{n}", "nobody.listens",
                        client=client)  # fmt: skip
            n += 1
        sent.append(n)


def run(db_url: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    schedules = [
        {"name": f"s{i}", "job": "tick", "every": "1s", "overlap": "allow",
         "payload": {"schedule": f"s{i}"}}
        for i in range(args.schedules)
    ]  # fmt: skip
    config = base_config(
        db_url, handlers=["tests.e2e.schedule_handlers"], workers=1, schedules=schedules
    )
    servers = []
    for index in range(args.processes):
        folder = workdir / f"p{index}"
        folder.mkdir()
        servers.append(HooklineProcess(folder, config, env={"HOOKLINE_TEST_DIR": str(workdir)}))
    stop = threading.Event()
    sent: list[int] = []
    threads = [
        threading.Thread(target=load, args=(servers[i % len(servers)], stop, sent))
        for i in range(args.load)
    ]
    try:
        for server in servers:
            server.start()
        time.sleep(2.0)  # every process (and its worker) up and ticking
        for thread in threads:
            thread.start()
        start = time.time()
        time.sleep(args.seconds)
        end = time.time()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for server in servers:
            server.stop()
    samples = sorted(x for s in servers for x in latencies(s, start, end))
    expected = len(range(math.ceil(start), math.floor(end) + 1)) * args.schedules
    quantiles = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "ticks": len(samples),
        "expected": expected,
        "p50_ms": quantiles[49] * 1000,
        "p90_ms": quantiles[89] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "max_ms": samples[-1] * 1000,
        "webhooks_per_s": sum(sent) / (end - start),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--schedules", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--load", type=int, default=0, help="threads posting webhooks")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            if backend == "sqlite":
                result = run(f"sqlite:///{workdir / 'hookline.db'}", args, workdir)
            else:
                name = f"hookline_bench_{secrets.token_hex(4)}"
                with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                try:
                    result = run(database_url(name), args, workdir)
                finally:
                    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                        conn.execute(
                            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                                sql.Identifier(name)
                            )
                        )
        print(
            f"{backend:8} processes={args.processes} schedules={args.schedules} "
            f"load={args.load} ({result['webhooks_per_s']:.0f} webhooks/s): "
            f"{result['ticks']} ticks (of ~{result['expected']}), tick → job stored "
            f"p50 {result['p50_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
