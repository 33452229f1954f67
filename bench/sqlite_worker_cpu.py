"""What one pipeline run costs the worker processes on SQLite, without HTTP in the way.

``--workers`` (2) ``hookline.child worker`` processes run ``bench/handlers_bench.py``
(``trivial``: two steps, the second sync) against a fresh SQLite file, while this process
stores ``--events`` events (the bench's Stripe fixture, 2 KB bodies) at ``--rate`` per
second through its own SQLite store, as an HTTP process would (its own group-commit writer,
taking turns on the file's write lock). Reported: the workers' CPU seconds per run (from
``/proc``, first event to last run ``succeeded``), their context switches per run, and
this process's CPU per event. No HTTP parsing, signature checks or JSON logging of requests
compete for the cores, so the worker figure moves less with the machine's other load than
``bench/pipeline_e2e.py``'s does; ``--profile SECONDS`` records a ``py-spy`` profile of one
worker (``--gil``: only samples holding the GIL) into
``bench/results/sqlite_worker_cpu-worker.txt``.

    .venv/bin/python bench/sqlite_worker_cpu.py [--events 10000] [--rate 4000]
        [--workers 2] [--profile 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import TEMPLATE, cpu_seconds, load_average  # noqa: E402

from hookline.ids import new_id  # noqa: E402
from hookline.pipeline import load_handlers  # noqa: E402
from hookline.store.base import NewEvent, NewRun  # noqa: E402
from hookline.store.sqlite import SQLiteStore  # noqa: E402
from tests.support.server import base_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def context_switches(pid: int) -> int:
    """Context switches of every thread of a process so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches" in line:  # voluntary and nonvoluntary
                    total += int(line.split(":")[1])
        except OSError:
            continue
    return total


async def run(args: argparse.Namespace, work: Path) -> None:
    db = work / "bench.db"
    config = work / "hookline.toml"
    config.write_text(
        base_config(
            f"sqlite:///{db}",
            handlers=["handlers_bench"],
            workers=args.workers,
            pipeline={"lease_seconds": 60, "poll_interval_seconds": 0.02},
        )
    )
    handler = next(s.name for s in load_handlers(["handlers_bench"]).specs if "trivial" in s.name)
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    await store.migrate()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'bench'}")
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "hookline.child", "worker", str(config)],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(work / f"worker-{i}.log").open("w"),
        )
        for i in range(args.workers)
    ]
    spy = None
    try:
        await asyncio.sleep(2.0)  # the workers import, migrate-check and start polling
        template = json.loads(json.loads(TEMPLATE.read_text())["body"])
        template["type"] = "bench.trivial"
        body = json.dumps(template, indent=2).encode()
        headers = {"content-type": "application/json", "stripe-signature": "[redacted]"}
        if args.profile:
            RESULTS.mkdir(exist_ok=True)
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(workers[0].pid), "--duration",
                 str(args.profile), "--rate", "997", "--threads", "--gil", "--format", "raw",
                 "--output", str(RESULTS / "sqlite_worker_cpu-worker.txt"), "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        cpu0 = [cpu_seconds(w.pid) for w in workers]
        switches0 = [context_switches(w.pid) for w in workers]
        own0 = time.process_time()
        start = time.monotonic()
        pending: list[asyncio.Task[object]] = []
        for i in range(args.events):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            runs = (NewRun(new_id("run"), handler, 3),)
            key = f"evt_bench_{i:07d}"
            event = NewEvent(new_id("evt"), "stripe", key, "bench.trivial", time.time(), headers,
                             body, runs)  # fmt: skip
            pending.append(asyncio.create_task(store.ingest(event, resume_failed=False)))
        await asyncio.gather(*pending)
        ingest_seconds = time.monotonic() - start
        reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        query = "SELECT count(*) FROM runs WHERE status = 'succeeded'"
        while reader.execute(query).fetchone()[0] < args.events:
            await asyncio.sleep(0.02)
        seconds = time.monotonic() - start
        used = sum(cpu_seconds(w.pid) for w in workers) - sum(cpu0)
        switches = sum(context_switches(w.pid) for w in workers) - sum(switches0)
        own = time.process_time() - own0
        reader.close()
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
        if spy is not None:
            spy.wait(args.profile + 30)
        await store.close()
    n = args.events
    print(
        f"workers: CPU per run {used / n * 1e6:.0f} µs, context switches per run "
        f"{switches / n:.2f}; this process (ingest): {own / n * 1e6:.0f} µs per event"
    )
    print(
        f"{n} runs in {seconds:.2f} s ({n / seconds:.0f} runs/s; ingest {ingest_seconds:.2f} s); "
        f"1-min load average {load_average()} (other work on the machine skews these figures)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=4_000.0, help="events stored per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", type=int, default=0, metavar="SECONDS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookline-sqlite-worker-") as tmp:
        import uvloop

        uvloop.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
