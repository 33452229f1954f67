"""Acks while ``prune`` runs on SQLite: one transaction for the whole prune, or chunks.

``hookline serve --workers 0`` on a SQLite file holding ``--old`` old events (each with a
succeeded run, two steps and two step attempts — what a prune deletes), offered Stripe
webhooks at ``--rate``/s (open loop, latencies from each request's scheduled time). While
they arrive, this process prunes the old events through ``SQLiteStore.prune`` with
``BULK_CHUNK`` set to each ``--chunks`` value in turn (a fresh copy of the database each
time; ``0`` = everything in one transaction, as before chunking; ``-1`` = no prune, the
baseline) and reports the acks' p50 / p99 / max and how long the prune took.

    .venv/bin/python bench/prune_ack.py [--old 100000] [--rate 500] [--chunks -1,0,50,200]

Prints a table and writes ``bench/results/prune_ack.json``. Loopback only; bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import exit_on_sigterm, load_average, open_loop, percentile, stripe_requests  # noqa: E402

from hookline.store import sqlite as sqlite_store  # noqa: E402
from tests.support.server import STRIPE_SECRET, HooklineProcess, base_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def fill(db: Path, old: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "hookline.cli", "migrate", "--config", str(db.parent / "m.toml")],
        check=True,
        capture_output=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    conn = sqlite3.connect(db)
    at = time.time() - 90 * 86_400
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (id, source, provider_event_id, type, status, received_at, "
        "headers, body) VALUES (?, 'stripe', ?, 't', 'succeeded', ?, '{}', ?)",
        ((f"evt_{i}", f"p_{i}", at, b'{"n": 1}' * 100) for i in range(old)),
    )
    conn.executemany(
        "INSERT INTO runs (id, event_id, handler, status, attempts, max_attempts, available_at, "
        "created_at, updated_at) VALUES (?, ?, 'h', 'succeeded', 1, 3, ?, ?, ?)",
        ((f"run_{i}", f"evt_{i}", at, at, at) for i in range(old)),
    )
    for step in ("a", "b"):
        conn.executemany(
            "INSERT INTO steps (event_id, handler, generation, name, position, status, result, "
            "updated_at) VALUES (?, 'h', 0, ?, 0, 'succeeded', '1', ?)",
            ((f"evt_{i}", step, at) for i in range(old)),
        )
        conn.executemany(
            "INSERT INTO step_attempts (run_id, event_id, handler, generation, step_name, number, "
            "started_at, ended_at, outcome) VALUES (?, ?, 'h', 0, ?, 1, ?, ?, 'succeeded')",
            ((f"run_{i}", f"evt_{i}", step, at, at) for i in range(old)),
        )
    conn.execute("COMMIT")
    conn.close()


async def measure(
    workdir: Path, template: Path, chunk: int, args: argparse.Namespace
) -> dict[str, Any]:
    db = workdir / f"prune-{chunk}.db"
    shutil.copy(template, db)
    config = base_config(f"sqlite:///{db}")
    server = HooklineProcess(workdir, config).start()
    store = sqlite_store.SQLiteStore(f"sqlite:///{db}")
    try:
        await store.open()
        requests = stripe_requests(
            STRIPE_SECRET, "bench.ping", int(args.rate * args.seconds), "127.0.0.1",
            server.port, f"pr{chunk}",
        )  # fmt: skip
        load = asyncio.create_task(open_loop("127.0.0.1", server.port, requests, args.rate))
        await asyncio.sleep(1.0)
        began = time.perf_counter()
        pruned = 0
        if chunk >= 0:  # -1: no prune at all, the baseline
            sqlite_store.BULK_CHUNK = chunk or 10**12
            pruned = await store.prune(time.time() - 86_400, include_failed=False)
        prune_seconds = time.perf_counter() - began
        result = await load
    finally:
        await store.close()
        server.stop()
    lat = result.latencies
    return {
        "chunk": {0: "all", -1: "no prune"}.get(chunk, chunk),
        "pruned": pruned,
        "prune_seconds": round(prune_seconds, 2),
        "acks": len(lat),
        "non_200": sum(v for k, v in result.statuses.items() if k != 200) + result.errors,
        "ack_p50_ms": round(percentile(lat, 50) * 1000, 2),
        "ack_p99_ms": round(percentile(lat, 99) * 1000, 2),
        "ack_max_ms": round(max(lat) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--chunks", default="-1,0,50,200")
    args = parser.parse_args()
    exit_on_sigterm()
    rows = []
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="hookline-prune-") as tmp:
        workdir = Path(tmp)
        template = workdir / "template.db"
        (workdir / "m.toml").write_text(base_config(f"sqlite:///{template}"))
        fill(template, args.old)
        for chunk in (int(c) for c in args.chunks.split(",")):
            rows.append(uvloop.run(measure(workdir, template, chunk, args)))
    print(f"\nAcks at {args.rate:g}/s while pruning {args.old} old events (SQLite)")
    print(f"{'chunk':>9}{'prune s':>9}{'acks':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for r in rows:
        print(
            f"{r['chunk']!s:>9}{r['prune_seconds']:>9}{r['acks']:>7}{r['ack_p50_ms']:>9}"
            f"{r['ack_p99_ms']:>9}{r['ack_max_ms']:>9}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "prune_ack.json"
    out.write_text(
        json.dumps(
            {
                "bench": "prune_ack",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average_before": load_before,
                "load_average_after": load_average(),
                "old_events": args.old,
                "rate": args.rate,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
