"""Ingestion benchmark: hookline against a hand-written Stripe receiver, over loopback.

    .venv/bin/python bench/ingest.py            # or: make bench

What it does, in about a minute:

1. Pre-signs distinct, realistic Stripe events (snapshot shapes taken from
   ``fixtures/stripe``, compact JSON of ~2-4 KB, unique ids, current timestamps) with
   ``providers.StripeProvider.sign``; the official ``stripe`` library checks one of them.
2. For each target - ``hookline serve`` (SQLite in a temp dir, durable: WAL +
   ``synchronous=FULL``, no handlers, no workers) and ``bench/baseline_receiver.py``
   under uvicorn (one worker) - it starts a fresh server on 127.0.0.1 and runs:
   a warm-up; **saturation** with ``wrk`` (closed loop, every request a different
   event, ``bench/wrk_presigned.lua``); a **fixed offered load** (default 1,000 req/s)
   from an open-loop generator in this process that measures each latency from the
   request's *scheduled* send time (so a stalled server cannot hide its queue:
   no coordinated omission). It records the server's CPU per thread and its RSS,
   stops the server, and checks the database: every acknowledged event is stored,
   and the only other rows are requests wrk cut off in flight when it stopped.
3. Prints a table (hookline, baseline, ratio) and writes the figures as JSON to
   ``bench/results/``.

``--bare`` adds the framework's ceiling (uvicorn + Starlette answering a constant 200, with
``--processes`` processes), ``--bullmq`` the Express + BullMQ receiver of ``bench/bullmq``
(one Node process, Redis; ``npm install`` on first use), each loaded the same way in the
same run; ``--postgres URL`` runs hookline on a fresh database of that server.

Only loopback addresses are used, the event count and durations are bounded, and
every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from hookline.providers import StripeProvider

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

from loadgen import children, cpu_seconds, thread_cpu  # noqa: E402

PYTHON = sys.executable
HOST = "127.0.0.1"
SECRET = "whsec_bench_" + "0123456789abcdef" * 2
PATH = "/webhooks/stripe"
TEMPLATES = (
    "invoice.paid",
    "checkout.session.completed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
)
WRK_HEADERS = (
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
    b"Accept: */*; q=0.5, application/xml\r\n"
    b"Cache-Control: no-cache\r\n"
)


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signed:
    signature: str
    body: bytes


def _templates() -> list[dict[str, Any]]:
    out = []
    for name in TEMPLATES:
        capture = json.loads((ROOT / "fixtures" / "stripe" / f"{name}.json").read_text())
        out.append(orjson.loads(capture["body"]))
    return out


def make_events(count: int, now: float) -> list[Signed]:
    """``count`` distinct Stripe events, signed at ``now`` with the bench secret."""
    provider = StripeProvider([SECRET])
    templates = _templates()
    nonce = os.urandom(4).hex()
    events = []
    for i in range(count):
        event = templates[i % len(templates)]
        event["id"] = f"evt_1B{nonce}{i:010d}"  # 24 chars like Stripe's
        event["created"] = int(now)
        obj = event["data"]["object"]
        obj["id"] = f"{obj['id'][:3]}1B{nonce}{i:010d}"
        obj["created"] = int(now) - 5
        body = orjson.dumps(event)
        events.append(Signed(provider.sign(body, now)["Stripe-Signature"], body))
    return events


def oracle_check(event: Signed) -> None:
    """The official library accepts what our signer produced (a one-off sanity check)."""
    import stripe

    parsed = stripe.Webhook.construct_event(event.body, event.signature, SECRET)
    assert parsed["id"] == orjson.loads(event.body)["id"]


def write_wrk_files(events: list[Signed], prefix: Path, threads: int) -> None:
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(f"{prefix}.{k}", "wb")) for k in range(threads)]
        for i, event in enumerate(events):
            files[i % threads].write(event.signature.encode() + b"\t" + event.body + b"\n")


def raw_request(event: Signed, port: int) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Stripe-Signature: {event.signature}\r\nContent-Length: {len(event.body)}\r\n"
    )
    return head.encode() + WRK_HEADERS + b"\r\n" + event.body


# -- targets ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    name: str
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    root: Path = ROOT  # the source tree to run (another checkout, to compare versions)
    #: the field of a 200 answer that holds the Stripe event id, and the column storing it
    ack_field = ""
    stored_ids_sql = ""

    @property
    def db(self) -> Path:
        return self.workdir / f"{self.name}.db"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def ready(self, client: httpx.Client) -> bool:
        raise NotImplementedError

    def stored_ids(self) -> set[str]:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return {row[0] for row in conn.execute(self.stored_ids_sql)}

    def start(self) -> None:
        args, env = self.command()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=self.root,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=f"http://{HOST}:{self.port}", timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if self.ready(client):
                        return
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Hookline(Target):
    ack_field = "eventId"
    stored_ids_sql = "SELECT provider_event_id FROM events"
    processes: int = 1
    pg_url: str = ""  # PostgreSQL instead of SQLite (a fresh database)

    def stored_ids(self) -> set[str]:
        if not self.pg_url:
            return super().stored_ids()
        import psycopg

        with psycopg.connect(self.pg_url) as conn:
            return {row[0] for row in conn.execute(self.stored_ids_sql)}

    def command(self) -> tuple[list[str], dict[str, str]]:
        config = self.workdir / "hookline.toml"
        url = self.pg_url or f"sqlite:///{self.db}"
        config.write_text(
            f"""
[server]
host = "{HOST}"
graceful_timeout_seconds = 10
processes = {self.processes}

[storage]
url = "{url}"

[admin]
token = "bench-admin-token-0123456789"

[pipeline]
handlers = []
workers = 0

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["{SECRET}"]
"""
        )
        args = [
            PYTHON,
            "-m",
            "hookline.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(self.port),
            "--workers",
            "0",
        ]
        return args, {}

    def ready(self, client: httpx.Client) -> bool:
        return client.get("/readyz").status_code == 200


class Bare(Target):
    """uvicorn + Starlette, a constant 200: the framework's ceiling (nothing stored)."""

    ack_field = "id"
    processes: int = 1

    def stored_ids(self) -> set[str]:
        return {"bare"}

    def command(self) -> tuple[list[str], dict[str, str]]:
        args = [PYTHON, "-m", "uvicorn", "bare_receiver:app", "--app-dir", str(BENCH),
                "--host", HOST, "--port", str(self.port), "--workers", str(self.processes),
                "--no-access-log"]  # fmt: skip
        return args, {}

    def ready(self, client: httpx.Client) -> bool:
        return client.get("/readyz").status_code == 200


class Floor(Target):
    """The least a durable receiver does on the same stack (``bench/floor_receiver.py``)."""

    ack_field = "eventId"
    stored_ids_sql = "SELECT id FROM events"
    processes: int = 1

    def command(self) -> tuple[list[str], dict[str, str]]:
        args = [PYTHON, "-m", "uvicorn", "floor_receiver:app", "--app-dir", str(BENCH),
                "--host", HOST, "--port", str(self.port), "--workers", str(self.processes),
                "--no-access-log"]  # fmt: skip
        return args, {"FLOOR_DB": str(self.db), "FLOOR_SECRET": SECRET}

    def ready(self, client: httpx.Client) -> bool:
        return client.get("/readyz").status_code == 200


class Baseline(Target):
    ack_field = "id"
    stored_ids_sql = "SELECT id FROM events"

    def command(self) -> tuple[list[str], dict[str, str]]:
        args = [
            PYTHON,
            "-m",
            "uvicorn",
            "baseline_receiver:app",
            "--app-dir",
            str(BENCH),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        return args, {"BASELINE_DB": str(self.db), "BASELINE_SECRET": SECRET}

    def ready(self, client: httpx.Client) -> bool:
        # A bad signature proves the app, its lifespan and its database are up.
        answer = client.post(PATH, content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
        return answer.status_code == 400


@dataclass
class ExpressBullmq(Target):
    """Express verifying with the ``stripe`` package, then BullMQ's ``queue.add`` on the local
    Redis (``bench/bullmq/bench.js receiver``, one Node process; no workers run, so every
    acknowledged job waits in the queue's list). Not durable: Redis here keeps nothing on disk.
    """

    ack_field = "id"

    def __post_init__(self) -> None:
        from pipeline_e2e import BULLMQ_DIR, npm_install

        npm_install()
        self.root = BULLMQ_DIR
        self.prefix = f"hlingest{os.getpid()}_{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {"PORT": str(self.port), "STRIPE_SECRET": SECRET, "PREFIX": self.prefix}
        return ["node", "bench.js", "receiver"], {**env, "QUEUE": "ingest"}

    def ready(self, client: httpx.Client) -> bool:
        answer = client.post(PATH, content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
        return answer.status_code == 400

    def stored_ids(self) -> set[str]:
        from pipeline_e2e import REDIS_DB, REDIS_PORT, Redis

        redis = Redis(REDIS_PORT, REDIS_DB)
        try:
            waiting = redis.cmd("LRANGE", f"{self.prefix}:ingest:wait", "0", "-1")
            redis.delete_prefix(self.prefix)
        finally:
            redis.close()
        return set(waiting)


# -- /proc --------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def group_rss_kib(pgid: int) -> int:
    """VmRSS summed over every process of a process group (a server and its children)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if os.getpgid(int(entry.name)) == pgid:
                total += proc_status(int(entry.name)).get("VmRSS", 0)
    return total


def _server_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of a server's process and its children (its HTTP processes)."""
    return sum(cpu_seconds(p) for p in [pid, *children(pid)])


class CpuSampler:
    """Samples the server's per-thread CPU time while a load runs.

    The figure is the median over 0.5 s intervals, so the load generator's start-up
    (wrk formats every request first) and its tail do not dilute it. Reported in cores:
    the event-loop thread (tid == pid), the busiest other thread (the group-commit
    writer; hookline's SQLite reader thread is idle) and the rest.
    """

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self._pid = pid
        self._interval = interval
        self._samples: list[tuple[float, dict[int, float], float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self._samples.append((time.monotonic(), thread_cpu(self._pid), machine_busy()))
            self._stop.wait(self._interval)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict[str, float]:
        rows = []
        for (t0, before, busy0), (t1, after, busy1) in itertools.pairwise(self._samples):
            used = {tid: (after[tid] - before.get(tid, 0.0)) / (t1 - t0) for tid in after}
            main = used.pop(self._pid, 0.0)
            busiest = max(used.values(), default=0.0)
            total = main + sum(used.values())
            rows.append((total, main, busiest, total - main - busiest, (busy1 - busy0) / (t1 - t0)))
        if not rows:
            return {}
        total, main, busiest, rest, machine = sorted(rows)[len(rows) // 2]
        return {
            "total_cores": round(total, 2),
            "event_loop_thread_cores": round(main, 2),
            "writer_thread_cores": round(busiest, 2),
            "other_threads_cores": round(rest, 2),
            "machine_busy_cores": round(machine, 2),
        }


def machine_busy() -> float:
    """CPU seconds all CPUs spent busy since boot (``/proc/stat``), to see other load."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- load ---------------------------------------------------------------------------------------


def wait_for_quiet(limit: float = 0.3, patience: float = 60.0) -> float:
    """Wait (a bounded time) until other programs use less than ``limit`` cores."""
    deadline = time.monotonic() + patience
    while True:
        before = machine_busy()
        time.sleep(1.0)
        busy = machine_busy() - before
        if busy < limit or time.monotonic() > deadline:
            return round(busy, 2)
        print(f"   (machine busy with {busy:.2f} cores of other work; waiting)", flush=True)
        time.sleep(2.0)


@dataclass
class Phase:
    """What one load phase saw: its figures, and the event ids of the new-event 200s."""

    figures: dict[str, Any]
    acked: set[str]
    unanswered: int  # requests sent whose answer was never read (cut off at the end)


def _acked_ids(lines: list[bytes], id_field: str) -> set[str]:
    ids = set()
    for line in lines:
        answer = orjson.loads(line)
        if not answer.get("duplicate"):
            ids.add(answer[id_field])
    return ids


def run_wrk(
    target: Target,
    prefix: Path,
    threads: int,
    connections: int,
    seconds: float,
    cpu: bool = False,
    script: Path = BENCH / "wrk_presigned.lua",
    script_args: tuple[str, ...] = (PATH,),
) -> Phase:
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{round(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{target.port}",
        "--",
        str(prefix),
        *script_args,
    ]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = _server_cpu_seconds(target.pid)
    with CpuSampler(target.pid) as sampler:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=seconds + 60, check=True
        )
    server_used = _server_cpu_seconds(target.pid) - server_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^WRK_RESULT (\{.*\})$", done.stdout, re.M)
    if match is None:
        raise RuntimeError(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")
    figures: dict[str, Any] = json.loads(match.group(1))
    figures["seconds"] = figures["duration_us"] / 1e6
    figures["accepted_per_s"] = round(figures["accepted"] / figures["seconds"], 1)
    wrk_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    figures["wrk_cpu_seconds"] = round(wrk_cpu, 2)
    if figures["exhausted_threads"]:
        print("   (wrk ran out of pre-signed events: raise --max-rate)", flush=True)
    server = sampler.result()
    if cpu and server:
        wrk_cores = wrk_cpu / figures["seconds"]
        # What neither the server nor wrk used: another program on the machine (noise).
        server["others_on_machine_cores"] = round(
            max(0.0, server["machine_busy_cores"] - server["total_cores"] - wrk_cores), 2
        )
        server["wrk_cores"] = round(wrk_cores, 2)
        answered = figures["accepted"] + figures["duplicates"] + figures["non_200"]
        # Every process of the server (all HTTP processes), steadier than rates on a busy box.
        server["all_processes_us_per_answer"] = round(server_used * 1e6 / max(1, answered), 1)
        figures["server_cpu"] = server
    lines: list[bytes] = []
    for k in range(threads):
        acks = Path(f"{prefix}.acks.{k}")
        lines += acks.read_bytes().splitlines()
        acks.unlink()
    answered = figures["accepted"] + figures["duplicates"] + figures["non_200"]
    return Phase(figures, _acked_ids(lines, target.ack_field), figures["sent"] - answered)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, body


async def open_loop(
    port: int, requests: list[bytes], rate: float, connections: int, id_field: str
) -> Phase:
    """Send ``requests`` at a constant ``rate``, each timed from its scheduled send time.

    ``connections`` keep-alive connections; a request whose connection is still busy
    waits, and that wait counts in its latency (no coordinated omission). Requests
    still unsent 5 s after the schedule ends are counted with their wait so far.
    """
    clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
    total = len(requests)
    latencies: list[float] = []
    send_lag: list[float] = []
    counts = {"accepted": 0, "duplicates": 0, "non_200": 0, "socket_errors": 0}
    acks: list[bytes] = []
    state = {"next": 0, "sent": 0}
    start = clock() + 0.3
    cutoff = start + total / rate + 5.0

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while state["next"] < total:
                i = state["next"]
                state["next"] += 1
                scheduled = start + i / rate
                delay = scheduled - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif clock() > cutoff:
                    return
                sent_at = clock()
                send_lag.append(sent_at - scheduled)
                writer.write(requests[i])
                state["sent"] += 1
                try:
                    status, body = await _read_answer(reader)
                except (OSError, asyncio.IncompleteReadError):
                    counts["socket_errors"] += 1
                    return
                # From the scheduled time; from the actual send if a timer fired early.
                latencies.append(clock() - min(scheduled, sent_at))
                if status != 200:
                    counts["non_200"] += 1
                elif b'"duplicate":true' in body:
                    counts["duplicates"] += 1
                else:
                    counts["accepted"] += 1
                    acks.append(body)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    unsent = total - state["sent"]
    # The ones never sent waited at least until the cut-off: count them (a lower bound).
    latencies += [cutoff - (start + i / rate) for i in range(total - unsent, total)]
    latencies.sort()
    send_lag.sort()
    figures = {
        "offered_per_s": rate,
        "requests": total,
        "unsent": unsent,
        **counts,
        "seconds": round(clock() - start, 3),
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p90_ms": _percentile(latencies, 90) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
        "p999_ms": _percentile(latencies, 99.9) * 1000,
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        # How late the generator itself sent (timer granularity, its own CPU): part of
        # every latency above, so an upper bound on the error it adds.
        "send_lag_p50_ms": _percentile(send_lag, 50) * 1000,
        "send_lag_p99_ms": _percentile(send_lag, 99) * 1000,
    }
    return Phase(figures, _acked_ids(acks, id_field), counts["socket_errors"])


# -- one target ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    threads: int
    connections: int
    warmup_seconds: float
    seconds: float
    rate: float
    rate_seconds: float
    rate_connections: int


@dataclass(frozen=True)
class Load:
    warmup: Path  # wrk request files (prefix)
    saturation: Path
    rate: list[Signed]


def _run_open_loop(target: Target, events: list[Signed], plan: Plan) -> Phase:
    requests = [raw_request(e, target.port) for e in events]
    coro = open_loop(target.port, requests, plan.rate, plan.rate_connections, target.ack_field)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def bench_target(target: Target, load: Load, plan: Plan, profile: Path | None) -> dict[str, Any]:
    idle = wait_for_quiet()
    print(
        f"\n== {target.name}: starting on {HOST}:{target.port} (machine busy {idle} cores before)",
        flush=True,
    )
    target.start()
    result: dict[str, Any] = {"name": target.name, "machine_busy_before_cores": idle}
    phases: list[Phase] = []
    try:
        warm = run_wrk(target, load.warmup, plan.threads, plan.connections, plan.warmup_seconds)
        phases.append(warm)
        print(f"   warm-up      {warm.figures['accepted_per_s']:8.0f} accepted/s", flush=True)
        with _profiling(target, plan, profile):
            sat = run_wrk(
                target, load.saturation, plan.threads, plan.connections, plan.seconds, cpu=True
            )
        phases.append(sat)
        f = sat.figures
        print(
            f"   saturation   {f['accepted_per_s']:8.0f} accepted/s  "
            f"p50 {f['p50_us'] / 1000:.2f} ms  p99 {f['p99_us'] / 1000:.2f} ms  "
            f"non-200 {f['non_200']}  server cpu {f['server_cpu']}",
            flush=True,
        )
        fixed = _run_open_loop(target, load.rate, plan)
        phases.append(fixed)
        f = fixed.figures
        print(
            f"   {plan.rate:.0f}/s offered  p50 {f['p50_ms']:.2f} ms  p99 {f['p99_ms']:.2f} ms  "
            f"p99.9 {f['p999_ms']:.2f} ms  non-200 {f['non_200']}  unsent {f['unsent']}  "
            f"(generator send lag p99 {f['send_lag_p99_ms']:.2f} ms)",
            flush=True,
        )
        result.update(
            memory_kib=proc_status(target.pid),
            group_rss_kib=group_rss_kib(target.pid),
            warmup=warm.figures,
            saturation=sat.figures,
            fixed_rate=fixed.figures,
        )
    finally:
        target.stop()
    result["verify"] = _verify(target, phases)
    return result


@contextlib.contextmanager
def _profiling(target: Target, plan: Plan, out: Path | None) -> Iterator[None]:
    """py-spy on the server during the saturation run (skipping wrk's start and end)."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
    if spy is None:
        print("   (py-spy not found: no profile)")
        yield
        return
    duration = max(1, round(plan.seconds) - 3)
    args = [
        spy,
        "record",
        "--pid",
        str(target.pid),
        "--duration",
        str(duration),
        "--rate",
        "200",
        "--threads",
        "--subprocesses",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    timer = threading.Timer(1.5, lambda: subprocess.run(args, capture_output=True, check=False))
    timer.start()
    try:
        yield
    finally:
        timer.join()
    print(f"   profile of the saturation run: {out}", flush=True)


def _verify(target: Target, phases: list[Phase]) -> dict[str, Any]:
    """Every acknowledged event is in the database; the only extra rows are requests the
    load generator sent but stopped waiting for (wrk drops in-flight requests at its end)."""
    stored = target.stored_ids()
    acked: set[str] = set().union(*(p.acked for p in phases))
    missing = len(acked - stored)
    extra = len(stored - acked)
    unanswered = sum(p.unanswered for p in phases)
    ok = missing == 0 and extra <= unanswered
    print(
        f"   stored rows {len(stored):,}, new-event 200s {len(acked):,}, acknowledged but "
        f"missing {missing}, stored but unanswered {extra} (<= {unanswered} cut off in "
        f"flight): {'OK' if ok else 'FAILED'}",
        flush=True,
    )
    return {
        "stored_rows": len(stored),
        "accepted_200s": len(acked),
        "missing": missing,
        "stored_unanswered": extra,
        "cut_off_in_flight": unanswered,
        "ok": ok,
    }


# -- report -------------------------------------------------------------------------------------


def machine(workdir: Path) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
        **disk_probe(workdir),
    }


def disk_probe(workdir: Path, seconds: float = 1.0) -> dict[str, int]:
    """What the disk allows SQLite (WAL, synchronous=FULL): 1-row and 100-row commits."""
    body = os.urandom(2600)
    out = {}
    with contextlib.closing(sqlite3.connect(workdir / "probe.db", isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (body BLOB)")
        for label, per in (
            ("sqlite_1_row_commits_per_s", 1),
            ("sqlite_rows_per_s_100_per_commit", 100),
        ):
            rows, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO t VALUES (?)", [(body,)] * per)
                conn.execute("COMMIT")
                rows += per
            out[label] = round(rows / (time.perf_counter() - start))
    return out


def table(hook: dict[str, Any], base: dict[str, Any] | None) -> str:
    """hookline, the baseline and their ratio; a latency ratio reads "N x lower"."""

    def row(label: str, key: Any, fmt: str, ratio: str) -> str:
        h = key(hook)
        b = key(base) if base else None
        text = ""
        if b is not None and b > 0 and h > 0:
            text = {"higher": f"{h / b:.2f}x", "lower": f"{b / h:.2f}x lower"}.get(ratio, "")
            text = text or f"{h / b:.2f}x"
        b_text = format(b, fmt) if b is not None else "-"
        return f"{label:<38}{format(h, fmt):>12}{b_text:>12}{text:>14}"

    rate = hook["fixed_rate"]["offered_per_s"]
    lines = [
        f"{'':<38}{'hookline':>12}{'baseline':>12}{'ratio':>14}",
        row(
            "accepted/s at saturation",
            lambda r: r["saturation"]["accepted_per_s"],
            ",.0f",
            "higher",
        ),
        row("p50 ack ms at saturation", lambda r: r["saturation"]["p50_us"] / 1000, ".2f", "lower"),
        row("p99 ack ms at saturation", lambda r: r["saturation"]["p99_us"] / 1000, ".2f", "lower"),
    ]
    for q in ("p50", "p99", "p999"):
        name = "p99.9" if q == "p999" else q
        lines.append(
            row(
                f"{name} ack ms at {rate:,.0f}/s offered",
                lambda r, q=q: r["fixed_rate"][f"{q}_ms"],
                ".2f",
                "lower",
            )
        )
    lines += [
        row("non-200 + socket errors", _errors, ",.0f", "none"),
        row(
            "server CPU cores at saturation",
            lambda r: r["saturation"]["server_cpu"]["total_cores"],
            ".2f",
            "plain",
        ),
        row(
            "server CPU us per accepted event",
            lambda r: (
                r["saturation"]["server_cpu"]["total_cores"]
                / r["saturation"]["accepted_per_s"]
                * 1e6
            ),
            ",.0f",
            "plain",
        ),
        row(
            "CPU us per answer, all server processes",
            lambda r: r["saturation"]["server_cpu"]["all_processes_us_per_answer"],
            ",.0f",
            "plain",
        ),
        row(
            "server peak RSS MiB (VmHWM)", lambda r: r["memory_kib"]["VmHWM"] / 1024, ".1f", "plain"
        ),
    ]
    verdict = {True: "yes", False: "NO"}
    lines.append(
        f"{'every 200 stored, nothing else':<38}{verdict[hook['verify']['ok']]:>12}"
        f"{verdict[base['verify']['ok']] if base else '-':>12}"
    )
    return "\n".join(lines)


def target_checks(results: dict[str, Any]) -> str:
    """The issue's targets (2-core machine, SQLite, durable), met or not."""
    hook, base = results["hookline"], results.get("baseline")
    checks = [
        ("saturation >= 4,000 accepted/s", hook["saturation"]["accepted_per_s"] >= 4000),
        (
            f"p99 ack <= 15 ms at {hook['fixed_rate']['offered_per_s']:,.0f}/s offered",
            hook["fixed_rate"]["p99_ms"] <= 15,
        ),
    ]
    if base:
        checks.append((">= 5x the baseline's throughput", results["throughput_ratio"] >= 5))
    return "\n".join(f"target: {label:<42} {'met' if ok else 'MISSED'}" for label, ok in checks)


def _errors(result: dict[str, Any]) -> int:
    return sum(
        result[k]["non_200"] + result[k]["socket_errors"] + result[k].get("timeouts", 0)
        for k in ("warmup", "saturation", "fixed_rate")
    )


def fresh_pg_database(admin_url: str) -> str:
    """A new, empty database on the given server; its URL."""
    import psycopg

    name = f"hookline_bench_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="saturation run (s)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up run (s)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rate", type=float, default=1000, help="fixed offered load (req/s)")
    parser.add_argument("--rate-seconds", type=float, default=10, help="fixed-load run (s)")
    parser.add_argument("--rate-connections", type=int, default=64)
    parser.add_argument(
        "--max-rate",
        type=int,
        default=10_000,
        help="events pre-signed per second of wrk run (caps the figure)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="no hand-written receiver")
    parser.add_argument("--processes", type=int, default=1, help="HTTP processes (and bare's)")
    parser.add_argument("--bare", action="store_true", help="+ bare uvicorn+Starlette ceiling")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="+ the least durable receiver on the same stack (bench/floor_receiver.py)",
    )
    parser.add_argument(
        "--bullmq", action="store_true", help="+ Express + BullMQ receiver (bench/bullmq, Redis)"
    )
    parser.add_argument(
        "--postgres",
        default="",
        metavar="ADMIN_URL",
        help="hookline on a fresh database of this PostgreSQL (e.g. postgresql://postgres@127.0.0.1/postgres)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profile (collapsed stacks) of the saturation run",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    if not 1 <= args.seconds <= 60 or not 0 < args.rate_seconds <= 60 or args.warmup > 30:
        parser.error("runs are bounded: --seconds and --rate-seconds up to 60, --warmup 30")

    plan = Plan(
        args.threads,
        args.connections,
        args.warmup,
        args.seconds,
        args.rate,
        args.rate_seconds,
        args.rate_connections,
    )
    n_warm = args.max_rate * args.warmup
    n_sat = args.max_rate * args.seconds
    n_rate = int(args.rate * args.rate_seconds)
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    events = make_events(n_warm + n_sat + n_rate, time.time())
    oracle_check(events[0])
    sizes = [len(e.body) for e in events]
    mean_size = round(sum(sizes) / len(sizes))
    print(
        f"pre-signed {len(events):,} distinct Stripe events in "
        f"{time.monotonic() - started:.1f} s (bodies {min(sizes):,}-{max(sizes):,} B, "
        f"mean {mean_size:,} B); stripe-python accepts them",
        flush=True,
    )

    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plan": {**vars(plan), "events": len(events), "mean_body_bytes": mean_size},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as tmp:
        work = Path(tmp)
        results["machine"] = machine(work)
        print(f"machine: {results['machine']}", flush=True)
        load = Load(work / "warmup", work / "saturation", events[n_warm + n_sat :])
        write_wrk_files(events[:n_warm], load.warmup, args.threads)
        write_wrk_files(events[n_warm : n_warm + n_sat], load.saturation, args.threads)
        del events
        hook = Hookline("hookline", work)
        hook.processes = args.processes
        if args.postgres:
            hook.pg_url = fresh_pg_database(args.postgres)
        targets: list[Target] = [hook]
        if args.bare:
            bare = Bare("bare", work)
            bare.processes = args.processes
            targets.append(bare)
        if args.floor:
            floor = Floor("floor", work)
            floor.processes = args.processes
            targets.append(floor)
        if args.bullmq:
            targets.append(ExpressBullmq("bullmq", work))
        if not args.no_baseline:
            targets.append(Baseline("baseline", work))
        for target in targets:
            profile = args.out / f"profile-{stamp}.txt" if args.profile else None
            try:
                results[target.name] = bench_target(
                    target, load, plan, profile if target.name == "hookline" else None
                )
            finally:
                target.stop()
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    base = results.get("baseline")

    def hookline_over(other: dict[str, Any]) -> float:
        """hookline's acks/s at saturation over another target's, same run."""
        ours = results["hookline"]["saturation"]["accepted_per_s"]
        return float(ours / max(1.0, other["saturation"]["accepted_per_s"]))

    if base:
        results["throughput_ratio"] = round(hookline_over(base), 2)
    bare = results.get("bare")
    if bare:
        results["share_of_bare"] = round(share := hookline_over(bare), 3)
        print(f"\nhookline / bare uvicorn+Starlette ({args.processes} processes): {share:.0%}")
        rss = results["hookline"]["group_rss_kib"] / 1024, bare["group_rss_kib"] / 1024
        print(f"RSS of all processes: hookline {rss[0]:.0f} MiB, bare {rss[1]:.0f} MiB")
    floor = results.get("floor")
    if floor and bare:
        share = floor["saturation"]["accepted_per_s"] / max(
            1.0, bare["saturation"]["accepted_per_s"]
        )
        results["floor_share_of_bare"] = round(share, 3)
        print(f"floor receiver / bare uvicorn+Starlette ({args.processes} processes): {share:.0%}")
    bullmq = results.get("bullmq")
    if bullmq:
        results["times_bullmq"] = round(times := hookline_over(bullmq), 2)
        print(f"hookline / Express+BullMQ receiver: {times:.2f}x")
    print("\n" + table(results["hookline"], base))
    print("\n" + target_checks(results))
    out = args.out / f"ingest-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"\nfigures written to {shown} (whole run {results['elapsed_seconds']} s)")
    return 0 if all(results[t.name]["verify"]["ok"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
