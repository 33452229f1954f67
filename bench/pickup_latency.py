"""Pick-up latency: from an event's commit to its first step starting, with idle workers.

Starts ``hookline serve --workers 2`` on SQLite, posts events one at a time with a
pause between them (so every event finds an idle worker), then reads from the
database, per run, ``first step attempt started_at - event received_at``.

    .venv/bin/python bench/pickup_latency.py [--events 300] [--gap 0.02]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.clients import post_stripe, wait_for  # noqa: E402
from tests.support.server import HooklineProcess, base_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between events")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = workdir / "hookline.db"
        config = base_config(
            f"sqlite:///{db}",
            handlers=["tests.e2e.pipeline_handlers"],
            workers=2,
            pipeline={"poll_interval_seconds": 0.02},
        )
        server = HooklineProcess(workdir, config, env={"HOOKLINE_TEST_DIR": tmp}).start()
        try:
            time.sleep(1.0)  # let both workers start
            with httpx.Client() as client:
                for n in range(args.events):
                    post_stripe(server, f"evt_pick_{n}", "test.two_steps", client=client)
                    time.sleep(args.gap)
            with sqlite3.connect(db) as conn:
                wait_for(
                    lambda: (
                        conn.execute(
                            "SELECT count(*) FROM runs WHERE status = 'succeeded'"
                        ).fetchone()[0]
                        == args.events
                    ),
                    timeout=60,
                )
                rows = conn.execute(
                    "SELECT min(a.started_at) - e.received_at FROM events e "
                    "JOIN step_attempts a ON a.event_id = e.id GROUP BY e.id"
                ).fetchall()
        finally:
            server.stop()
    latencies = sorted(r[0] * 1000 for r in rows)
    q = statistics.quantiles(latencies, n=100)
    result = {
        "events": len(latencies),
        "p50_ms": round(q[49], 2),
        "p90_ms": round(q[89], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(latencies[-1], 2),
        "poll_interval_ms": 20,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
