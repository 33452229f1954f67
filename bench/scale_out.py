"""Scale-out, side by side in one run: 2 ingest processes + 3 worker processes of

* **hookline on PostgreSQL** — 2 ``hookline serve --workers 0`` + 3 ``hookline worker``;
* **hookline on SQLite** — the same five processes sharing one SQLite file (one machine);
* **Express + BullMQ** — 2 Express receivers + 3 BullMQ worker processes (``bench/bullmq``),

each pushed ``--events`` pre-signed Stripe events (half to each ingest process, over
``--concurrency`` keep-alive connections in all) for the same two-step job as
``bench/handlers_bench.py:trivial``. Reported per system: ingest/s (acknowledged events per
second while posting), runs completed/s end to end (first post → last run done), the
acks' p50/p99, and the CPU each kind of process used per event (from ``/proc``, and for
PostgreSQL the server backends of the bench's own database), which shows what limits each
figure. ``--profile`` adds a ``py-spy`` profile (``--format raw``) of one ingest and one
worker process of the PostgreSQL run, summarised by function.

    .venv/bin/python bench/scale_out.py [--events 20000] [--concurrency 64]
        [--systems postgres,sqlite,bullmq] [--profile]

Prints a table and writes ``bench/results/scale_out.json``. Loopback only; bounded; every
process started is stopped, the bench's PostgreSQL database dropped and its Redis keys
deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import uvloop
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import (  # noqa: E402
    Result,
    closed_loop,
    cpu_seconds,
    exit_on_sigterm,
    load_average,
    percentile,
    stripe_requests,
)
from pipeline_e2e import (  # noqa: E402
    REDIS_DB,
    REDIS_PORT,
    TIME_LIMIT,
    Completion,
    Redis,
    _node,
    _stop,
    _wait_port,
    npm_install,
)

from tests.support.pg import ADMIN_URL  # noqa: E402
from tests.support.server import (  # noqa: E402
    STRIPE_SECRET,
    HooklineProcess,
    base_config,
    free_port,
)

RESULTS = ROOT / "bench" / "results"
INGEST, WORKERS = 2, 3


class CpuMeter:
    """CPU seconds used by groups of processes between ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.groups: dict[str, list[int]] = {}
        self._start: dict[int, float] = {}
        self.used: dict[str, float] = {}

    def start(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._start = {pid: cpu_seconds(pid) for pids in groups.values() for pid in pids}

    def stop(self, extra: dict[str, list[int]] | None = None) -> None:
        for name, pids in {**self.groups, **(extra or {})}.items():
            self.used[name] = round(
                sum(cpu_seconds(pid) - self._start.get(pid, 0.0) for pid in pids), 2
            )


def figures(name: str, n: int, t0: float, posts: list[Result], done: Completion) -> dict[str, Any]:
    ok = sum(p.statuses.get(200, 0) for p in posts)
    ingest_s = max(p.finished for p in posts) - t0
    latencies = [x for p in posts for x in p.latencies]
    statuses: collections.Counter[str] = collections.Counter()
    for p in posts:
        statuses.update({str(k): v for k, v in p.statuses.items()})
    out: dict[str, Any] = {
        "system": name,
        "events": n,
        "accepted": ok,
        "statuses": dict(statuses),
        "errors": sum(p.errors for p in posts),
        "ingest_seconds": round(ingest_s, 3),
        "ingest_per_s": round(ok / ingest_s, 1),
        "ack_p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "ack_p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "completed": done.last,
    }
    if done.done_at is not None:
        total = done.done_at - t0
        out["e2e_seconds"] = round(total, 3)
        out["completed_per_s"] = round(n / total, 1)
    else:
        out["e2e_seconds"] = None
        out["completed_per_s"] = round(done.last / TIME_LIMIT, 1)
        out["note"] = f"not all runs completed within {TIME_LIMIT:.0f}s"
    return out


async def push(
    ports: list[int], n: int, concurrency: int, prefix: str, count: Any
) -> tuple[float, list[Result], Completion]:
    requests = [
        stripe_requests(STRIPE_SECRET, "bench.trivial", n, "127.0.0.1", port, prefix)
        for port in ports
    ]
    share = [req[i :: len(ports)] for i, req in enumerate(requests)]  # each event once
    done = Completion(count, n)
    t0 = time.perf_counter()
    done.start(t0)
    posts = await asyncio.gather(
        *(
            closed_loop("127.0.0.1", port, reqs, concurrency // len(ports))
            for port, reqs in zip(ports, share, strict=True)
        )
    )
    await asyncio.get_running_loop().run_in_executor(None, done.wait)
    return t0, list(posts), done


def cpu_per_event(used: dict[str, float], events: int) -> dict[str, float]:
    return {k: round(v / events * 1e6) for k, v in used.items()}  # µs per event


# -- profiles ----------------------------------------------------------------------------------


def start_profile(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


OUTER = (
    "main", "run", "run_forever", "run_until_complete", "_run_once", "_run", "serve",
    "worker", "run_worker_process", "serve_worker", "asyncio_run", "_main", "<module>",
    "Worker.run", "Worker._claim_loop", "Worker._execute", "Server.run", "Server.serve",
)  # fmt: skip


def summarise_profile(path: Path, top: int = 14) -> dict[str, list[tuple[str, float]]]:
    """Shares of samples: by the frame running (self), and by hookline/psycopg/sqlite
    function on the stack (inclusive, each counted once per sample)."""
    if not path.exists():
        return {}
    total = 0
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")[1:]  # the first item is the thread
        if frames:
            self_time[frames[-1]] += n
        seen = set()
        for frame in frames:
            name, _, where = frame.partition(" (")
            if name in OUTER or name.split(".")[-1] in OUTER or name in seen:
                continue
            if "hookline/" in where or "psycopg" in where or "uvicorn" in where:
                seen.add(name)
                inclusive[name] += n
    if not total:
        return {}

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {"self": share(self_time), "inclusive": share(inclusive)}


# -- hookline ----------------------------------------------------------------------------------


async def run_hookline(args: argparse.Namespace, workdir: Path, backend: str) -> dict[str, Any]:
    db_name = ""
    if backend == "postgres":
        db_name = f"hookline_scale_{secrets.token_hex(4)}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
        url = ADMIN_URL.rpartition("/")[0] + "/" + db_name
    else:
        url = f"sqlite:///{workdir / 'scale.db'}"
    config = base_config(
        url,
        handlers=["handlers_bench"],
        pipeline={"lease_seconds": 60, "poll_interval_seconds": 0.02},
    )
    if backend == "postgres":  # [storage] pool_size
        config = config.replace(f'url = "{url}"', f'url = "{url}"\npool_size = {args.pool_size}')
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}
    serves = [HooklineProcess(workdir, config, env=env) for _ in range(INGEST)]
    workers = [HooklineProcess(workdir, config, command="worker", env=env) for _ in range(WORKERS)]
    meter = CpuMeter()
    profiles: list[subprocess.Popen[bytes]] = []
    try:
        for proc in serves:
            proc.start()
        for proc in workers:
            proc.start(wait=False)
        deadline = time.monotonic() + 30
        while sum(p.logs().count('"worker started"') for p in workers) < WORKERS:
            assert time.monotonic() < deadline, "workers did not start"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)

        if backend == "postgres":
            reader = psycopg.connect(url, autocommit=True)

            def succeeded() -> int:
                row = reader.execute("SELECT count(*) FROM events WHERE status = 'succeeded'")
                return int(row.fetchone()[0])  # type: ignore[index]

            def backends() -> list[int]:
                rows = reader.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()",
                    (db_name,),
                ).fetchall()
                return [int(r[0]) for r in rows]
        else:
            import sqlite3

            lite = sqlite3.connect(
                f"file:{workdir / 'scale.db'}?mode=ro", uri=True, check_same_thread=False
            )

            def succeeded() -> int:
                row = lite.execute("SELECT count(*) FROM events WHERE status = 'succeeded'")
                return int(row.fetchone()[0])

            def backends() -> list[int]:
                return []

        groups = {
            "ingest": [p.proc.pid for p in serves if p.proc],
            "workers": [p.proc.pid for p in workers if p.proc],
            "postgres": backends(),
        }
        meter.start(groups)
        if args.profile and backend == "postgres":
            seconds = max(5, int(args.events / 4000))
            for name, proc in (("ingest", serves[0]), ("worker", workers[0])):
                assert proc.proc is not None
                spy = start_profile(proc.proc.pid, workdir / f"profile-{name}.txt", seconds)
                if spy is not None:
                    profiles.append(spy)
        t0, posts, done = await push(
            [p.port for p in serves], args.events, args.concurrency, backend[:2], succeeded
        )
        meter.stop({"postgres": backends()} if backend == "postgres" else None)
        out = figures(f"hookline ({backend})", args.events, t0, posts, done)
        if backend == "postgres":
            out["pool_size"] = args.pool_size
        out["cpu_seconds"] = meter.used
        out["cpu_us_per_event"] = cpu_per_event(meter.used, args.events)
        for spy in profiles:
            spy.wait(timeout=120)
        if profiles:
            out["profile"] = {
                name: summarise_profile(workdir / f"profile-{name}.txt")
                for name in ("ingest", "worker")
            }
        if backend == "postgres":
            # what the database did per event: transactions, and any table scan
            time.sleep(0.5)  # the statistics collector reports every ~0.5 s
            xacts = reader.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (db_name,)
            ).fetchone()
            out["postgres_commits_per_event"] = round(int(xacts[0]) / args.events, 1)  # type: ignore[index]
            out["postgres_table_scans"] = {
                row[0]: {"seq_scan": row[1], "seq_tup_read": row[2], "idx_scan": row[3]}
                for row in reader.execute(
                    "SELECT relname, seq_scan, seq_tup_read, idx_scan FROM pg_stat_user_tables"
                )
            }
            reader.close()
        else:
            lite.close()
    finally:
        for proc in [*workers, *serves]:
            proc.stop()
        if db_name:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(db_name)
                    )
                )
    return out


# -- BullMQ ------------------------------------------------------------------------------------


async def run_bullmq(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    npm_install()
    prefix = f"hlscale{os.getpid()}"
    queue = "webhooks"
    ports = [free_port() for _ in range(INGEST)]
    base_env = {
        **os.environ,
        "STRIPE_SECRET": STRIPE_SECRET,
        "REDIS_PORT": str(REDIS_PORT),
        "REDIS_DB": str(REDIS_DB),
        "PREFIX": prefix,
        "QUEUE": queue,
        "CONCURRENCY": "32",
    }
    redis = Redis(REDIS_PORT, REDIS_DB)
    receivers: list[subprocess.Popen[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    meter = CpuMeter()
    try:
        for i, port in enumerate(ports):
            log = workdir / f"bullmq-receiver-{i}.log"
            receivers.append(_node("receiver", {**base_env, "PORT": str(port)}, log))
            _wait_port(port, receivers[-1], log)
        workers = [
            _node("worker", {**base_env, "PORT": "0"}, workdir / f"bullmq-worker-{i}.log")
            for i in range(WORKERS)
        ]
        await asyncio.sleep(1.5)  # the workers connect
        redis_pid = int(
            subprocess.run(
                ["pgrep", "-o", "redis-server"], capture_output=True, text=True
            ).stdout.split()[0]
        )

        def completed() -> int:
            return int(redis.cmd("ZCARD", f"{prefix}:{queue}:completed"))

        meter.start(
            {
                "ingest": [p.pid for p in receivers],
                "workers": [p.pid for p in workers],
                "redis": [redis_pid],
            }
        )
        t0, posts, done = await push(ports, args.events, args.concurrency, "bq", completed)
        meter.stop()
        out = figures("Express + BullMQ", args.events, t0, posts, done)
        out["failed"] = int(redis.cmd("ZCARD", f"{prefix}:{queue}:failed"))
        out["cpu_seconds"] = meter.used
        out["cpu_us_per_event"] = cpu_per_event(meter.used, args.events)
        out["note_redis"] = "the machine's shared Redis: its CPU includes other users' work"
    finally:
        for proc in [*workers, *receivers]:
            _stop(proc)
        redis.delete_prefix(prefix)
        redis.close()
    return out


# -- main --------------------------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\nScale-out: {rows[0]['events']} signed Stripe events, trivial two-step job, "
        f"{INGEST} ingest + {WORKERS} worker processes, {os.cpu_count()} CPUs"
    )
    print(
        f"{'system':<20}{'ingest/s':>10}{'ack p50':>9}{'ack p99':>9}{'e2e s':>8}"
        f"{'runs/s':>9}   CPU µs per event"
    )
    for r in rows:
        e2e = f"{r['e2e_seconds']:.2f}" if r["e2e_seconds"] is not None else "-"
        cpu = ", ".join(f"{k} {v}" for k, v in r["cpu_us_per_event"].items())
        print(
            f"{r['system']:<20}{r['ingest_per_s']:>10.0f}{r['ack_p50_ms']:>7.1f}ms"
            f"{r['ack_p99_ms']:>7.1f}ms{e2e:>8}{r['completed_per_s']:>9.0f}   {cpu}"
        )
    for r in rows:
        if "postgres_commits_per_event" in r:
            scans = {k: v["seq_tup_read"] for k, v in r["postgres_table_scans"].items()}
            print(
                f"{r['system']}: {r['postgres_commits_per_event']} commits per event; "
                f"rows read by sequential scans: {scans}"
            )
    for r in rows:
        for name, kinds in r.get("profile", {}).items():
            for kind, top in kinds.items():
                print(f"\nprofile of one {name} process ({r['system']}), {kind}:")
                for frame, share in top:
                    print(f"  {share:5.1f}%  {frame[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--systems", default="postgres,sqlite,bullmq")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--pool-size", type=int, default=10, help="PostgreSQL [storage] pool_size")
    args = parser.parse_args()
    exit_on_sigterm()
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hookline-scale-") as tmp:
        for system in args.systems.split(","):
            workdir = Path(tmp) / system
            workdir.mkdir()
            if system == "bullmq":
                rows.append(uvloop.run(run_bullmq(args, workdir)))
            else:
                rows.append(uvloop.run(run_hookline(args, workdir, system)))
    print_table(rows)
    result = {
        "bench": "scale_out",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "results": rows,
    }
    print(
        f"\n1-min load average before/after: {load_before}/{result['load_average_after']} "
        "(other work on the machine skews these figures)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "scale_out.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
