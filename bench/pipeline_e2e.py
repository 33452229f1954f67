"""Pipeline end to end: N signed Stripe webhooks in, N two-step runs ``succeeded``.

**hookline**: ``hookline serve --workers 2`` on SQLite with ``bench/handlers_bench.py``
(``trivial``: two memoized steps that do next to nothing). Every event is posted
once, pre-signed, over ``--concurrency`` keep-alive connections; the clock runs
from the first post until every run is ``succeeded`` (the SQLite file is polled
read-only). Reported: runs completed/s end to end, and the ingest rate.

**BullMQ** (``--compare bullmq``, the default): the same events into an Express
receiver that verifies each signature with the ``stripe`` package and enqueues
(jobId = event id), and 2 BullMQ worker processes running the same two steps
(``bench/bullmq/bench.js``), on the local Redis. ``npm install`` runs into
``bench/bullmq/node_modules`` when it is missing. Only keys under the bench's own
prefix are touched, and they are deleted at the end.

**PostgreSQL** (``--postgres URL``): the same ``hookline serve --workers 2`` on a fresh
database created on that server (dropped at the end).

Because the machine may be shared, hookline's figures also include the CPU seconds each
kind of process used from the first post to the last run (``/proc``: the HTTP processes,
the worker processes, and on PostgreSQL the server's backends of the bench's database),
per run. ``--profile SECONDS`` records a ``py-spy`` profile (raw, collapsed stacks) of one
worker process meanwhile, into ``bench/results/pipeline_e2e-worker.txt``.

    .venv/bin/python bench/pipeline_e2e.py [--events 20000] [--concurrency 64]
        [--compare bullmq|none] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
        [--worker-sched-idle true|false] [--worker-concurrency 32]
        [--profile 8]

Prints a table and writes ``bench/results/pipeline_e2e.json``. Loopback only;
every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
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
    cpu_seconds,
    exit_on_sigterm,
    load_average,
    percentile,
    stripe_requests,
    worker_sched_idle_setting,
)

from tests.support.server import (  # noqa: E402
    STRIPE_SECRET,
    HooklineProcess,
    base_config,
    free_port,
)

RESULTS = ROOT / "bench" / "results"
BULLMQ_DIR = ROOT / "bench" / "bullmq"
REDIS_PORT = 6379
REDIS_DB = 0
TIME_LIMIT = 120.0  # seconds from the first post; a system slower than this is reported as such


# -- shared ------------------------------------------------------------------------------------


class Completion:
    """Polls a completion counter in a thread; remembers when it first reached ``total``."""

    def __init__(self, count: Any, total: int, interval: float = 0.05) -> None:
        self._count = count
        self._total = total
        self._interval = interval
        self.done_at: float | None = None
        self.last = 0
        self.timeline: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread.start()

    def _main(self) -> None:
        while not self._stop.is_set():
            self.last = self._count()
            now = time.perf_counter()
            self.timeline.append((round(now - self._t0, 3), self.last))
            if self.last >= self._total:
                self.done_at = now
                return
            if now - self._t0 > TIME_LIMIT:
                return
            time.sleep(self._interval)

    def wait(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def figures(name: str, n: int, t0: float, post: Result, done: Completion) -> dict[str, Any]:
    ok = post.statuses.get(200, 0)
    ingest_s = post.finished - t0
    out: dict[str, Any] = {
        "system": name,
        "events": n,
        "accepted": ok,
        "statuses": {str(k): v for k, v in sorted(post.statuses.items())},
        "errors": post.errors,
        "ingest_seconds": round(ingest_s, 3),
        "ingest_per_s": round(ok / ingest_s, 1),
        "ack_p50_ms": round(percentile(post.latencies, 50) * 1000, 2),
        "ack_p99_ms": round(percentile(post.latencies, 99) * 1000, 2),
        "completed": done.last,
        "completed_when_ingest_ended": next(
            (c for t, c in reversed(done.timeline) if t <= ingest_s), 0
        ),
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
    port: int, n: int, concurrency: int, prefix: str, count: Any
) -> tuple[float, Result, Completion]:
    requests = stripe_requests(STRIPE_SECRET, "bench.trivial", n, "127.0.0.1", port, prefix)
    done = Completion(count, n)
    t0 = time.perf_counter()
    done.start(t0)
    post = await closed_loop("127.0.0.1", port, requests, concurrency)
    await asyncio.get_running_loop().run_in_executor(None, done.wait)
    return t0, post, done


# -- hookline ----------------------------------------------------------------------------------


def _role(pid: int) -> str:
    """serve, http N or worker: from the name a forked child gives itself
    (hookline-worker, hookline-http-N), else from the command line."""
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    if comm.startswith("hookline-"):
        return comm.removeprefix("hookline-").replace("-", " ")
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [a.decode(errors="replace") for a in argv if a]
    if "hookline.child" in words:
        rest = words[words.index("hookline.child") + 1 :]
        return f"http {rest[3]}" if rest[:1] == ["http"] and len(rest) > 3 else rest[0]
    return "serve" if "serve" in words else " ".join(words)[:40]


def _kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


class PeakRss:
    """The largest sum of VmRSS over a process group (serve, its HTTP processes, workers).

    Beside it, the largest sum of PSS (``/proc/PID/smaps_rollup``): a page shared by k
    processes counts 1/k in each one's PSS, so the PSS sum is the memory the group really
    holds, where the RSS sum counts a shared page once per process. And per process (by
    role), the largest VmRSS and PSS it reached."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak_kib = 0
        self.peak_pss_kib = 0
        self.per_process: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, tuple[int, int]]:
        """{role: (VmRSS KiB, PSS KiB)} of the group's processes now."""
        out: dict[str, tuple[int, int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    pid = int(entry.name)
                    if os.getpgid(pid) == self.pgid:
                        rss = _kib(entry / "status", "VmRSS:")
                        pss = _kib(entry / "smaps_rollup", "Pss:")
                        role = _role(pid)
                        while role in out:  # two workers: worker, worker'
                            role += "'"
                        out[role] = (rss, pss)
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = self.sample()
            self.peak_kib = max(self.peak_kib, sum(r for r, _ in now.values()))
            self.peak_pss_kib = max(self.peak_pss_kib, sum(p for _, p in now.values()))
            for role, (rss, pss) in now.items():
                peak = self.per_process.setdefault(role, {"rss_kib": 0, "pss_kib": 0})
                peak["rss_kib"] = max(peak["rss_kib"], rss)
                peak["pss_kib"] = max(peak["pss_kib"], pss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def print_memory(idle: dict[str, tuple[int, int]], rss: PeakRss) -> None:
    print(f"{'process':<12}{'idle RSS':>10}{'idle PSS':>10}{'peak RSS':>10}{'peak PSS':>10}  MiB")
    for role in sorted(set(idle) | set(rss.per_process)):
        i_rss, i_pss = idle.get(role, (0, 0))
        peak = rss.per_process.get(role, {"rss_kib": 0, "pss_kib": 0})
        print(
            f"{role:<12}{i_rss / 1024:>10.1f}{i_pss / 1024:>10.1f}"
            f"{peak['rss_kib'] / 1024:>10.1f}{peak['pss_kib'] / 1024:>10.1f}"
        )


def children_cpu_seconds() -> float:
    """User + system CPU of the processes this one has reaped, and of everything they reaped
    (serve reaps its HTTP processes and workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_kinds(serve_pid: int) -> dict[str, list[int]]:
    """serve's processes by kind: ``http`` (serve itself and its HTTP children), ``worker``."""
    kinds: dict[str, list[int]] = {"http": [serve_pid], "worker": []}
    for pid in children(serve_pid):
        with contextlib.suppress(OSError):  # a forked worker has serve's command line
            kinds["worker" if _role(pid) == "worker" else "http"].append(pid)
    return kinds


def start_profile(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
         "--threads", "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


class PgDatabase:
    """A fresh database on the server of ``admin_url``, dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"hookline_e2e_{secrets.token_hex(4)}"
        self.url = admin_url.rpartition("/")[0] + "/" + self.name

    def _admin(self, statement: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(self.name)))

    def __enter__(self) -> PgDatabase:
        self._admin("CREATE DATABASE {}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")


async def run_hookline(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if args.postgres:
        with PgDatabase(args.postgres) as pg:
            return await _run_hookline(args, workdir, pg)
    return await _run_hookline(args, workdir, None)


async def _run_hookline(
    args: argparse.Namespace, workdir: Path, pg: PgDatabase | None
) -> dict[str, Any]:
    cpu_before = children_cpu_seconds()
    db = workdir / "e2e.db"
    config = base_config(
        pg.url if pg is not None else f"sqlite:///{db}",
        handlers=["handlers_bench"],
        workers=2,
        pipeline={
            "lease_seconds": 60,
            "poll_interval_seconds": 0.02,
            **worker_sched_idle_setting(args.worker_sched_idle),
            **({"concurrency": args.worker_concurrency} if args.worker_concurrency else {}),
        },
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
    reader: Any = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        assert server.proc is not None
        deadline = time.monotonic() + 10
        while len(children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the workers import, migrate-check and start polling
        if pg is not None:
            import psycopg

            reader = psycopg.connect(pg.url, autocommit=True)
        else:
            reader = sqlite3.connect(
                f"file:{db}?mode=ro", uri=True, timeout=10, check_same_thread=False
            )
        lock = threading.Lock()  # the poller's thread and this one share the connection

        def query(sql: str) -> list[Any]:
            with lock:
                return list(reader.execute(sql).fetchall())

        def succeeded() -> int:  # the events_status index: cheap to poll
            return int(query("SELECT count(*) FROM events WHERE status = 'succeeded'")[0][0])

        def backends() -> list[int]:
            if pg is None:
                return []
            rows = query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            return [int(r[0]) for r in rows]

        kinds = {**process_kinds(server.proc.pid), "postgres": backends()}
        before = {pid: cpu_seconds(pid) for pids in kinds.values() for pid in pids}
        if args.profile and kinds["worker"]:
            RESULTS.mkdir(parents=True, exist_ok=True)
            out_file = RESULTS / "pipeline_e2e-worker.txt"
            spy = start_profile(kinds["worker"][0], out_file, args.profile)
        with PeakRss(server.proc.pid) as rss:
            idle = rss.sample()
            t0, post, done = await push(server.port, args.events, args.concurrency, "hl", succeeded)
        kinds["postgres"] = sorted({*kinds["postgres"], *backends()})
        cpu = {
            kind: round(sum(cpu_seconds(p) - before.get(p, 0.0) for p in pids), 2)
            for kind, pids in kinds.items()
        }
        out = figures("hookline", args.events, t0, post, done)
        out["store"] = "postgres" if pg is not None else "sqlite"
        out["processes"] = args.processes
        out["cpu_seconds"] = cpu
        out["cpu_us_per_run"] = {
            kind: round(seconds / max(1, done.last) * 1e6) for kind, seconds in cpu.items()
        }
        print(
            "hookline: CPU per run "
            + ", ".join(f"{k} {v} µs" for k, v in out["cpu_us_per_run"].items())
            + f" (over {done.last} runs; CPU seconds {cpu})"
        )
        out["peak_rss_all_processes_mib"] = round(rss.peak_kib / 1024, 1)
        out["peak_pss_all_processes_mib"] = round(rss.peak_pss_kib / 1024, 1)
        out["memory_per_process_kib"] = {
            role: {"idle_rss": i[0], "idle_pss": i[1]} for role, i in idle.items()
        }
        for role, peak in rss.per_process.items():
            entry = out["memory_per_process_kib"].setdefault(role, {})
            entry["peak_rss"], entry["peak_pss"] = peak["rss_kib"], peak["pss_kib"]
        print(f"hookline: peak RSS of every process together {rss.peak_kib / 1024:.0f} MiB")
        print(
            f"hookline: peak PSS of every process together {rss.peak_pss_kib / 1024:.0f} MiB "
            "(shared pages counted once)"
        )
        print_memory(idle, rss)
        if pg is not None:  # what the database did per run (the collector lags ~0.5 s)
            time.sleep(0.6)
            commits = query(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )[0][0]
            out["postgres_commits_per_run"] = round(int(commits) / max(1, done.last), 2)
            print(f"hookline: PostgreSQL commits per run {out['postgres_commits_per_run']}")
            out["postgres_table_scans"] = {
                row[0]: {"seq_scan": row[1], "seq_tup_read": row[2], "idx_scan": row[3]}
                for row in query(
                    "SELECT relname, seq_scan, seq_tup_read, idx_scan FROM pg_stat_user_tables"
                )
                if row[1]
            }
            print(f"hookline: PostgreSQL sequential scans {out['postgres_table_scans']}")
        runs = dict(query("SELECT status, count(*) FROM runs GROUP BY status"))
        out["runs_by_status"] = runs
        out["workers"] = 2
    finally:
        if spy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=args.profile + 30)
        if reader is not None:
            reader.close()
        server.stop()
    # the whole run, startup and drain included: every process, once serve has exited
    cpu = children_cpu_seconds() - cpu_before
    out["cpu_seconds_all_processes"] = round(cpu, 2)
    per_1000 = cpu / args.events * 1000
    print(f"hookline: CPU of every process {cpu:.1f} s ({per_1000:.2f} s per 1000 events)")
    return out


# -- BullMQ ------------------------------------------------------------------------------------


class Redis:
    """Just enough RESP to count and delete the bench's keys."""

    def __init__(self, port: int, db: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._file = self._sock.makefile("rb")
        self._lock = threading.Lock()
        self.cmd("SELECT", str(db))

    def cmd(self, *parts: str) -> Any:
        out = [f"*{len(parts)}\r\n".encode()]
        for part in parts:
            raw = part.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
        with self._lock:
            self._sock.sendall(b"".join(out))
            return self._reply()

    def _reply(self) -> Any:
        line = self._file.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._file.read(size + 2)[:-2]
            return data.decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")

    def delete_prefix(self, prefix: str) -> int:
        deleted, cursor = 0, "0"
        while True:
            cursor, keys = self.cmd("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", "1000")
            if keys:
                deleted += int(self.cmd("UNLINK", *keys))
            if cursor == "0":
                return deleted

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def npm_install() -> None:
    if (BULLMQ_DIR / "node_modules" / "bullmq").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (Node 20+ is needed for --compare bullmq)")
    print("installing bench/bullmq dependencies with npm ...", flush=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BULLMQ_DIR, check=True
    )


def _node(mode: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["node", "bench.js", mode],
        cwd=BULLMQ_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"receiver exited:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the BullMQ receiver did not start")


async def run_bullmq(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    npm_install()
    prefix = f"hlbench{os.getpid()}"
    queue = "webhooks"
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "STRIPE_SECRET": STRIPE_SECRET,
        "REDIS_PORT": str(REDIS_PORT),
        "REDIS_DB": str(REDIS_DB),
        "PREFIX": prefix,
        "QUEUE": queue,
        "CONCURRENCY": "32",
    }
    redis = Redis(REDIS_PORT, REDIS_DB)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        receiver_log = workdir / "bullmq-receiver.log"
        procs.append(_node("receiver", env, receiver_log))
        procs += [_node("worker", env, workdir / f"bullmq-worker-{i}.log") for i in range(2)]
        _wait_port(port, procs[0], receiver_log)
        await asyncio.sleep(1.0)  # the workers connect

        def completed() -> int:
            return int(redis.cmd("ZCARD", f"{prefix}:{queue}:completed"))

        t0, post, done = await push(port, args.events, args.concurrency, "bq", completed)
        out = figures("BullMQ", args.events, t0, post, done)
        out["failed"] = int(redis.cmd("ZCARD", f"{prefix}:{queue}:failed"))
        out["workers"] = 2
        out["versions"] = {
            "node": subprocess.run(
                ["node", "--version"], capture_output=True, text=True
            ).stdout.strip(),
            **{
                pkg: json.loads((BULLMQ_DIR / "node_modules" / pkg / "package.json").read_text())[
                    "version"
                ]
                for pkg in ("bullmq", "express", "stripe")
            },
        }
    finally:
        for proc in procs:
            _stop(proc)
        redis.delete_prefix(prefix)
        redis.close()
    return out


# -- main --------------------------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\nPipeline end to end: {rows[0]['events']} signed Stripe events, trivial two-step "
        f"handler, 2 workers, {os.cpu_count()} CPUs"
    )
    print(
        f"{'system':<10}{'accepted':>9}{'ingest/s':>10}{'ack p50':>9}{'ack p99':>9}"
        f"{'done at ingest end':>20}{'e2e s':>8}{'completed/s':>13}"
    )
    for r in rows:
        e2e = f"{r['e2e_seconds']:.2f}" if r["e2e_seconds"] is not None else "-"
        print(
            f"{r['system']:<10}{r['accepted']:>9}{r['ingest_per_s']:>10.0f}"
            f"{r['ack_p50_ms']:>7.1f}ms{r['ack_p99_ms']:>7.1f}ms"
            f"{r['completed_when_ingest_ended']:>20}{e2e:>8}{r['completed_per_s']:>13.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--compare", choices=("bullmq", "none"), default="bullmq")
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=None,
        help="[pipeline] concurrency, runs in flight per worker (default: hookline's default)",
    )
    add_worker_sched_idle_option(parser)
    parser.add_argument("--processes", type=int, default=2, help="hookline's HTTP processes")
    parser.add_argument(
        "--postgres", metavar="ADMIN_URL", help="run hookline on a fresh database of this server"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="SECONDS", help="py-spy one worker meanwhile"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hookline-e2e-") as tmp:
        rows.append(uvloop.run(run_hookline(args, Path(tmp))))
        if args.compare == "bullmq":
            rows.append(uvloop.run(run_bullmq(args, Path(tmp))))
    print_table(rows)
    result: dict[str, Any] = {
        "bench": "pipeline_e2e",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "concurrency": args.concurrency,
        "worker_concurrency": args.worker_concurrency,  # None: hookline's default
        "worker_sched_idle": args.worker_sched_idle,
        "results": rows,
        "target_completed_per_s": 2000,
        "target_met": rows[0]["completed_per_s"] >= 2000 and rows[0]["e2e_seconds"] is not None,
    }
    if len(rows) > 1:
        ratio = rows[0]["completed_per_s"] / rows[1]["completed_per_s"]
        result["hookline_vs_" + rows[1]["system"].lower()] = round(ratio, 2)
        print(f"hookline / {rows[1]['system']} (completed/s): {ratio:.2f}x")
    print(
        f"1-min load average before/after: {load_before}/{result['load_average_after']} "
        "(other work on the machine skews these figures)"
    )
    verdict = "MET" if result["target_met"] else "MISSED"
    print(f"target >= 2000 runs/s end to end: {verdict}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "pipeline_e2e.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
