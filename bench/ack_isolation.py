"""Ack isolation: does a webhook's ack latency stay flat while the workers are saturated?

Starts ``hookline serve --workers 2`` on SQLite with ``bench/handlers_bench.py``,
then measures the ack latency of Stripe webhooks offered at a constant rate
(open loop, latency from each request's *scheduled* send time, so a stall is
never hidden by coordinated omission) in two phases on the same server:

* **idle**: the probes (``bench.ping``) match no handler and the workers have
  nothing to do;
* **loaded**: first enough ``bench.cpu`` events are posted to keep both worker
  processes burning CPU (two steps of 200 ms each in a tight Python loop) for
  longer than the phase, then the same probes are offered again.

Target: loaded p99 within 2x of idle p99. The worker processes' CPU use during
each phase is read from /proc to show they really were saturated.

    .venv/bin/python bench/ack_isolation.py [--rate 500] [--seconds 12] [--worker-nice 10]
        [--worker-sched-idle true|false]

Prints a table and writes ``bench/results/ack_isolation.json``. Loopback only;
the server and its workers are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import (  # noqa: E402
    Result,
    add_worker_sched_idle_option,
    children,
    closed_loop,
    exit_on_sigterm,
    load_average,
    open_loop,
    percentile,
    stat_fields,
    stripe_requests,
    worker_sched_idle_setting,
)

from tests.support.server import STRIPE_SECRET, HooklineProcess, base_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TICKS = os.sysconf("SC_CLK_TCK")
CPU_STEP_SECONDS = 0.2  # bench/handlers_bench.py CPU_STEP_SECONDS
CPU_STEPS_PER_EVENT = 2


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


#: /proc/PID/stat's policy field → its name.
POLICIES = {0: "SCHED_OTHER", 3: "SCHED_BATCH", 5: "SCHED_IDLE"}


def nice_of(pid: int) -> int:
    try:
        return int(stat_fields(f"/proc/{pid}/stat")[16])
    except OSError:
        return 0


def policy_of(pid: int) -> str:
    try:
        number = int(stat_fields(f"/proc/{pid}/stat")[38])
    except OSError:
        return "?"
    return POLICIES.get(number, str(number))


def run_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
    finally:
        conn.close()


def summary(result: Result, seconds: float) -> dict[str, Any]:
    ms = [x * 1000 for x in result.latencies]
    return {
        "requests": len(ms),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "errors": result.errors,
        "error_kinds": result.error_kinds,
        "achieved_rps": round(len(ms) / seconds, 1),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "p999_ms": round(percentile(ms, 99.9), 3),
        "max_ms": round(max(ms), 3) if ms else None,
        "connections_used": result.connections,
        "generator_max_lag_ms": round(result.max_lag * 1000, 3),
    }


async def phase(
    server: HooklineProcess, args: argparse.Namespace, prefix: str, workers: list[int]
) -> dict[str, Any]:
    warmup = int(args.rate)  # the first second is sent but not recorded
    count = warmup + int(args.rate * args.seconds)
    requests = stripe_requests(STRIPE_SECRET, "bench.ping", count, "127.0.0.1", server.port, prefix)
    cpu_before = {pid: cpu_seconds(pid) for pid in workers}
    wall = time.perf_counter()
    result = await open_loop("127.0.0.1", server.port, requests, args.rate, warmup=warmup)
    wall = time.perf_counter() - wall
    out = summary(result, args.seconds)
    out["worker_cpu_share"] = {  # 1.0 = one full core for the whole phase
        str(pid): round((cpu_seconds(pid) - cpu_before[pid]) / wall, 2) for pid in workers
    }
    return out


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    db = workdir / "ack.db"
    pipeline: dict[str, Any] = {
        "lease_seconds": 60,
        "poll_interval_seconds": 0.02,
        "concurrency": 32,
    }
    if args.worker_nice is not None:
        pipeline["worker_nice"] = args.worker_nice
    pipeline.update(worker_sched_idle_setting(args.worker_sched_idle))
    config = base_config(
        f"sqlite:///{db}",
        handlers=["handlers_bench"],
        workers=2,
        pipeline=pipeline,
        processes=args.processes,
    )
    server = HooklineProcess(
        workdir,
        config,
        "serve",
        extra_args=("--workers", "2"),
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"},
    )
    server.start()
    try:
        assert server.proc is not None
        deadline = time.monotonic() + 10
        while len(workers := worker_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # let the workers import and start polling
        idle = await phase(server, args, "idle", workers)

        # Saturate: enough CPU work that both workers stay busy past the phase's end.
        cpu_needed = 2 * (args.seconds + 4) * 2  # 2 cores, the phase plus margin, 2x over
        n_cpu = int(cpu_needed / (CPU_STEP_SECONDS * CPU_STEPS_PER_EVENT))
        heavy = stripe_requests(STRIPE_SECRET, "bench.cpu", n_cpu, "127.0.0.1", server.port, "cpu")
        prefill = await closed_loop("127.0.0.1", server.port, heavy, concurrency=16)
        assert prefill.statuses.get(200) == n_cpu, prefill.statuses
        await asyncio.sleep(1.0)  # the workers claim and start burning
        before = run_counts(db)
        loaded = await phase(server, args, "loaded", workers)
        after = run_counts(db)
        loaded["cpu_runs_at_start"] = before
        loaded["cpu_runs_at_end"] = after
        still_busy = after.get("running", 0) + after.get("queued", 0) > 0
        observed_nice = [nice_of(pid) for pid in workers]
        observed_policy = [policy_of(pid) for pid in workers]
    finally:
        server.stop()
    ratio = loaded["p99_ms"] / idle["p99_ms"]
    return {
        "bench": "ack_isolation",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "rate": args.rate,
        "seconds": args.seconds,
        "worker_nice": args.worker_nice,
        "observed_worker_nice": observed_nice,
        "worker_sched_idle": args.worker_sched_idle,
        "observed_worker_policy": observed_policy,
        "cpu_events_prefilled": n_cpu,
        "workers_busy_until_end": still_busy,
        "idle": idle,
        "loaded": loaded,
        "p99_ratio": round(ratio, 2),
        "target_met": ratio <= 2.0 and still_busy,
    }


def print_table(r: dict[str, Any]) -> None:
    print(
        f"\nAck isolation: {r['rate']:.0f} req/s offered for {r['seconds']}s, open loop, "
        f"{r['cpus']} CPUs, 2 workers, worker nice {r['observed_worker_nice']} "
        f"{r['observed_worker_policy']}"
    )
    print(
        f"{'phase':<8}{'ok':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
        f"{'max ms':>9}{'  worker CPU (cores)'}"
    )
    for name in ("idle", "loaded"):
        p = r[name]
        cpu = " + ".join(f"{v:.2f}" for v in p["worker_cpu_share"].values())
        print(
            f"{name:<8}{p['statuses'].get('200', 0):>7}{p['p50_ms']:>9.2f}{p['p90_ms']:>9.2f}"
            f"{p['p99_ms']:>9.2f}{p['p999_ms']:>10.2f}{p['max_ms']:>9.2f}  {cpu}"
        )
    print(
        f"1-min load average before/after: {r['load_average_before']}/"
        f"{r['load_average_after']} (other work on the machine skews these figures)"
    )
    verdict = "MET" if r["target_met"] else "MISSED"
    print(
        f"loaded p99 / idle p99 = {r['p99_ratio']:.2f}x (target <= 2x: {verdict}); "
        f"workers still busy at the end: {r['workers_busy_until_end']}"
    )


def worker_children(pid: int) -> list[int]:
    """The worker processes among serve's children (the others are HTTP processes): forked
    ones are named hookline-worker, restarted ones run ``hookline.child worker``."""
    found = []
    for child in children(pid):
        with contextlib.suppress(OSError):
            proc = Path(f"/proc/{child}")
            if (proc / "comm").read_text().strip() == "hookline-worker" or (
                b"\0worker\0" in (proc / "cmdline").read_bytes()
            ):
                found.append(child)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s offered")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per phase")
    parser.add_argument("--processes", type=int, default=2, help="serve's HTTP processes")
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=None,
        help="[pipeline] worker_nice for this run (default: hookline's default)",
    )
    add_worker_sched_idle_option(parser)
    args = parser.parse_args()
    exit_on_sigterm()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="hookline-ack-") as tmp:
        result = uvloop.run(bench(args, Path(tmp)))
    result["load_average_before"] = load_before
    result["load_average_after"] = load_average()
    print_table(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "ack_isolation.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
