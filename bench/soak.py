"""Soak: a long steady stream of signed webhooks through ingest and a two-step handler,
with ``hookline prune`` deleting old events as it goes.

``hookline serve --workers 2`` on a SQLite file with ``bench/soak_handlers.py``
(``soak.two_steps``: two memoized steps, each appending one line to ``effects.log``).
``--events`` distinct Stripe events (a real captured payload, fresh id, signed just before
it is sent) are offered at ``--rate``/s, open loop, at most ``--in-flight`` unanswered.
Every ``--prune-every`` seconds ``hookline prune --older-than <--retention>`` runs as its
own process. Every ``--sample-every`` seconds it records, for the server and each worker
process: RSS (``/proc/PID/status``) and open fds (``/proc/PID/fd``); plus acks/s, runs
completed/s (second side effects/s), the database file and WAL sizes and the row count.

At the end (all events sent, or ``--max-seconds`` passed, or SIGINT/SIGTERM: sending stops,
the rest still runs) it waits for the queue to drain, stops the server and checks, from the
database and ``effects.log``: every acked event is in the database or was pruned after its
handler finished (both side effects seen), no side effect happened twice, no 5xx.

    .venv/bin/python bench/soak.py [--events 1000000] [--rate 250] [--retention 5m]
        [--prune-every 60] [--sample-every 30] [--warmup 300] [--max-seconds 0]

Prints a table and writes ``bench/results/soak.json``; ``--report bench/results/soak.json``
prints a saved run as the markdown tables of docs/reliability.md. Loopback only; bounded by
``--events`` and ``--max-seconds``; every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import TEMPLATE, _Pool, _send, children, load_average  # noqa: E402

from hookline.providers.stripe import StripeProvider  # noqa: E402
from tests.support.server import STRIPE_SECRET, HooklineProcess, base_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SIGNALS: list[int] = []  # SIGINT/SIGTERM received: the first stops sending, a second the drain
PREFIX = "soak"
EVENT_TYPE = "soak.two_steps"


@dataclass
class Counters:
    tried: int = 0
    acked: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)  # no HTTP answer: why
    statuses: dict[int, int] = field(default_factory=dict)
    pruned: int = 0
    prunes: list[dict[str, Any]] = field(default_factory=list)


class Requests:
    """Builds request ``i`` on demand, signed now (a pre-built million would be gigabytes)."""

    def __init__(self, port: int) -> None:
        self._template = json.loads(json.loads(TEMPLATE.read_text())["body"])
        self._template["type"] = EVENT_TYPE
        self._signer = StripeProvider([STRIPE_SECRET])
        self._port = port

    def build(self, i: int) -> bytes:
        self._template["id"] = event_id(i)
        body = json.dumps(self._template, separators=(",", ":")).encode()
        sig = self._signer.sign(body, time.time())["Stripe-Signature"]
        head = (
            f"POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1:{self._port}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Stripe-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


def event_id(i: int) -> str:
    return f"evt_{PREFIX}_{i:07d}"


def index_of(provider_event_id: str) -> int | None:
    head, _, number = provider_event_id.rpartition("_")
    return int(number) if head == f"evt_{PREFIX}" and number.isdigit() else None


# -- sampling ----------------------------------------------------------------------------------


def proc_figures(pid: int) -> tuple[int, int] | None:
    """(RSS in KiB, open fds) of ``pid``, or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return (int(match.group(1)) if match else 0), fds


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class EffectsTail:
    """Counts the lines of ``effects.log`` read so far, per step, reading only new bytes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.one = 0
        self.two = 0

    def read(self) -> None:
        try:
            with self._path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"one "):
                self.one += 1
            elif line.startswith(b"two "):
                self.two += 1


class Sampler:
    def __init__(self, server: HooklineProcess, db: Path, effects: EffectsTail, c: Counters):
        self._server, self._db, self._effects, self._c = server, db, effects, c
        self.samples: list[dict[str, Any]] = []
        self._t0 = time.monotonic()
        self._last = (self._t0, 0, 0)
        self._reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)

    def take(self) -> dict[str, Any]:
        assert self._server.proc is not None
        root = self._server.proc.pid
        procs: dict[str, Any] = {}
        for label, pid in [("serve", root)] + [
            (f"worker{n}", pid) for n, pid in enumerate(sorted(children(root)), 1)
        ]:
            fig = proc_figures(pid)
            if fig is not None:
                procs[label] = {"pid": pid, "rss_kib": fig[0], "fds": fig[1]}
        self._effects.read()
        now = time.monotonic()
        then, acked_then, done_then = self._last
        dt = max(now - then, 1e-9)
        try:
            rows = int(self._reader.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.Error:
            rows = -1
        sample = {
            "t": round(now - self._t0, 1),
            "tried": self._c.tried,
            "acked": self._c.acked,
            "done": self._effects.two,
            "acked_per_s": round((self._c.acked - acked_then) / dt, 1),
            "done_per_s": round((self._effects.two - done_then) / dt, 1),
            "db_bytes": file_size(self._db),
            "wal_bytes": file_size(self._db.with_name(self._db.name + "-wal")),
            "rows": rows,
            "pruned": self._c.pruned,
            "load": round(os.getloadavg()[0], 2),
            "procs": procs,
        }
        self._last = (now, self._c.acked, self._effects.two)
        self.samples.append(sample)
        print(format_sample(sample), flush=True)
        return sample

    def close(self) -> None:
        self._reader.close()


def format_sample(s: dict[str, Any]) -> str:
    procs = " ".join(
        f"{k}={v['rss_kib'] / 1024:.0f}MiB/{v['fds']}fd" for k, v in s["procs"].items()
    )
    return (
        f"t={s['t']:>7.0f}s acked={s['acked']:>8} done={s['done']:>8} "
        f"ack/s={s['acked_per_s']:>6.0f} done/s={s['done_per_s']:>6.0f} "
        f"db={s['db_bytes'] / 2**20:.1f}MiB wal={s['wal_bytes'] / 2**20:.1f}MiB "
        f"rows={s['rows']} pruned={s['pruned']} load={s['load']} {procs}"
    )


# -- the run -----------------------------------------------------------------------------------


async def send_all(
    port: int, args: argparse.Namespace, c: Counters, acked: bytearray, stop: asyncio.Event
) -> float:
    """Offer the events at ``args.rate``/s; returns how late the generator was at worst."""
    requests = Requests(port)
    pool = _Pool("127.0.0.1", port, _Ignored())  # type: ignore[arg-type]
    await pool.warm(8)
    slots = asyncio.Semaphore(args.in_flight)
    tasks: set[asyncio.Task[None]] = set()
    max_lag = 0.0

    async def one(i: int) -> None:
        try:
            status = await _send(pool, requests.build(i))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            c.errors += 1
            kind = type(exc).__name__
            c.error_kinds[kind] = c.error_kinds.get(kind, 0) + 1
            return
        finally:
            slots.release()
        c.statuses[status] = c.statuses.get(status, 0) + 1
        if status == 200:
            c.acked += 1
            acked[i] = 1

    start = time.perf_counter() + 0.05
    for i in range(args.events):
        due = start + i / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            max_lag = max(max_lag, -delay)
        if stop.is_set() or SIGNALS:
            break
        await slots.acquire()
        c.tried += 1
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    await pool.close()
    return max_lag


class _Ignored:
    """The pool's result sink: this bench keeps its own counters."""

    connections = 0


async def prune_loop(
    server: HooklineProcess, args: argparse.Namespace, c: Counters, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), args.prune_every)
            return
        except TimeoutError:
            pass
        began = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hookline.cli", "prune", "--older-than", args.retention,
            "--config", str(server.config_path),
            cwd=server.workdir, env=server.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        text = out.decode(errors="replace").strip()
        match = re.search(r"pruned (\d+)", text)
        count = int(match.group(1)) if match else 0
        c.pruned += count
        c.prunes.append(
            {"rc": proc.returncode, "pruned": count, "seconds": round(time.monotonic() - began, 2)}
        )
        if proc.returncode != 0:
            print(f"prune failed ({proc.returncode}): {text}", flush=True)


async def sample_loop(sampler: Sampler, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            sampler.take()


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    db = workdir / "soak.db"
    config = base_config(
        f"sqlite:///{db}",
        handlers=["soak_handlers"],
        workers=2,
        pipeline={
            "lease_seconds": 60,
            "poll_interval_seconds": 0.02,
            "backoff_base_seconds": 0.5,
            "backoff_max_seconds": 5,
            # the machine is shared: niced (or SCHED_IDLE) workers would measure the
            # neighbours, not hookline
            "worker_nice": 0,
            "worker_sched_idle": False,
        },
    )
    server = HooklineProcess(
        workdir,
        config,
        "serve",
        extra_args=("--workers", "2"),
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}", "HOOKLINE_SOAK_DIR": str(workdir)},
    )
    server.start()
    c = Counters()
    acked = bytearray(args.events)
    effects = EffectsTail(workdir / "effects.log")
    stop_sending = asyncio.Event()
    stop_background = asyncio.Event()
    if args.max_seconds:
        asyncio.get_running_loop().call_later(args.max_seconds, stop_sending.set)
    sampler = Sampler(server, db, effects, c)
    began = time.monotonic()
    try:
        sampler.take()
        background = [
            asyncio.create_task(sample_loop(sampler, args.sample_every, stop_background)),
            asyncio.create_task(prune_loop(server, args, c, stop_background)),
        ]
        max_lag = await send_all(server.port, args, c, acked, stop_sending)
        sent_seconds = time.monotonic() - began
        print(f"sending ended after {sent_seconds:.0f}s; draining", flush=True)
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline and len(SIGNALS) < 2:  # a second signal: no drain
            effects.read()
            if effects.two >= c.acked:
                break
            await asyncio.sleep(1.0)
        drain_seconds = time.monotonic() - began - sent_seconds
        stop_background.set()
        await asyncio.gather(*background)
        sampler.take()
    finally:
        sampler.close()
        server.stop()
    verdict = verify(db, workdir / "effects.log", acked, args.events)
    return {
        "events_offered": args.events,
        "rate": args.rate,
        "retention": args.retention,
        "prune_every": args.prune_every,
        "requests_tried": c.tried,
        "events_acked": c.acked,
        "statuses": {str(k): v for k, v in sorted(c.statuses.items())},
        "errors": c.errors,
        "error_kinds": c.error_kinds,
        "five_xx": sum(v for k, v in c.statuses.items() if k >= 500),
        "send_seconds": round(sent_seconds, 1),
        "drain_seconds": round(drain_seconds, 1),
        "generator_max_lag_s": round(max_lag, 3),
        "pruned": c.pruned,
        "prune_runs": len(c.prunes),
        "prune_failures": sum(1 for p in c.prunes if p["rc"] != 0),
        "prune_seconds_max": max((p["seconds"] for p in c.prunes), default=0),
        **verdict,
        "samples": sampler.samples,
    }


def verify(db: Path, effects_path: Path, acked: bytearray, n: int) -> dict[str, Any]:
    """Side effects per event from ``effects.log``; presence from the database."""
    one, two, present = bytearray(n), bytearray(n), bytearray(n)
    effects_path.touch()  # none yet when the run was stopped before any event
    with effects_path.open("rb") as f:
        for line in f:
            step, _, eid = line.strip().partition(b" ")
            i = index_of(eid.decode())
            if i is None or i >= n:
                continue
            counts = one if step == b"one" else two
            counts[i] = min(255, counts[i] + 1)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    statuses: dict[str, int] = {}
    for pid, status in conn.execute("SELECT provider_event_id, status FROM events"):
        i = index_of(pid)
        if i is not None and i < n:
            present[i] = 1
        statuses[status] = statuses.get(status, 0) + 1
    conn.close()
    lost = pruned_done = incomplete = dup = stored = 0
    for i in range(n):
        dup += max(0, one[i] - 1) + max(0, two[i] - 1)
        if not acked[i]:
            continue
        if present[i]:
            stored += 1
        elif two[i]:
            pruned_done += 1
        else:
            lost += 1
        if not two[i]:
            incomplete += 1
    return {
        "acked_found_in_db": stored,
        "acked_pruned_after_success": pruned_done,
        "acked_lost": lost,
        "acked_not_completed": incomplete,
        "duplicate_side_effects": dup,
        "rows_at_end_by_status": statuses,
        "db_bytes_end": file_size(db),
    }


# -- report ------------------------------------------------------------------------------------


def summarize(result: dict[str, Any], warmup: float) -> dict[str, Any]:
    samples = result["samples"]
    after = [s for s in samples if s["t"] >= warmup] or samples[-1:]
    labels = sorted({k for s in samples for k in s["procs"]})
    procs: dict[str, Any] = {}
    for label in labels:
        seen = [s["procs"][label] for s in samples if label in s["procs"]]
        warm = [s["procs"][label] for s in after if label in s["procs"]]
        if not seen or not warm:
            continue
        rss = [p["rss_kib"] for p in warm]
        fds = [p["fds"] for p in warm]
        procs[label] = {
            "pids": sorted({p["pid"] for p in seen}),
            "rss_mib_first": round(seen[0]["rss_kib"] / 1024, 1),
            "rss_mib_after_warmup": round(rss[0] / 1024, 1),
            "rss_mib_last": round(rss[-1] / 1024, 1),
            "rss_mib_max_after_warmup": round(max(rss) / 1024, 1),
            "rss_spread_after_warmup_pct": round((max(rss) - min(rss)) / rss[0] * 100, 1),
            "fds_first": seen[0]["fds"],
            "fds_after_warmup": fds[0],
            "fds_last": fds[-1],
            "fds_min_max_after_warmup": [min(fds), max(fds)],
        }
    steady = [s for s in after if s["tried"] < result["requests_tried"]] or after
    rates = [s["acked_per_s"] for s in steady[1:]] or [0.0]
    db = [s["db_bytes"] + s["wal_bytes"] for s in after]
    return {
        "warmup_seconds": warmup,
        "processes": procs,
        "acked_per_s_min_max_after_warmup": [min(rates), max(rates)],
        "db_plus_wal_mib_after_warmup_min_max": [
            round(min(db) / 2**20, 1),
            round(max(db) / 2**20, 1),
        ],
        "rows_max": max(s["rows"] for s in samples),
    }


def print_summary(result: dict[str, Any], summary: dict[str, Any]) -> None:
    print("\nSoak summary")
    for key in (
        "events_offered", "rate", "requests_tried", "events_acked", "statuses", "errors",
        "error_kinds", "five_xx", "acked_found_in_db", "acked_pruned_after_success", "acked_lost",
        "acked_not_completed", "duplicate_side_effects", "pruned", "prune_runs",
        "prune_failures", "prune_seconds_max", "send_seconds", "drain_seconds",
        "generator_max_lag_s", "db_bytes_end",
    ):  # fmt: skip
        print(f"  {key:<28}{result[key]}")
    print(f"  {'acked/s after warm-up':<28}{summary['acked_per_s_min_max_after_warmup']}")
    print(f"  {'db+wal MiB after warm-up':<28}{summary['db_plus_wal_mib_after_warmup_min_max']}")
    print(f"  {'rows max':<28}{summary['rows_max']}")
    print(
        f"\n{'process':<9}{'RSS first':>10}{'warm':>8}{'last':>8}{'max':>8}{'spread':>8}"
        f"{'fds first':>10}{'warm':>6}{'last':>6}{'min-max':>9}"
    )
    for label, p in summary["processes"].items():
        print(
            f"{label:<9}{p['rss_mib_first']:>10}{p['rss_mib_after_warmup']:>8}"
            f"{p['rss_mib_last']:>8}{p['rss_mib_max_after_warmup']:>8}"
            f"{p['rss_spread_after_warmup_pct']:>7}%{p['fds_first']:>10}"
            f"{p['fds_after_warmup']:>6}{p['fds_last']:>6}"
            f"{'-'.join(map(str, p['fds_min_max_after_warmup'])):>9}"
        )


def markdown(saved: dict[str, Any], every: float = 300) -> str:
    """The tables of docs/reliability.md, from a saved ``soak.json``."""
    r, summary = saved, saved["summary"]
    out = [
        "| figure | value |",
        "|---|---|",
        f"| events offered / requests tried | {r['events_offered']:,} / {r['requests_tried']:,} |",
        f"| events acked (200) | {r['events_acked']:,} |",
        f"| acked and in the database at the end | {r['acked_found_in_db']:,} |",
        f"| acked and pruned after their run succeeded | {r['acked_pruned_after_success']:,} |",
        f"| acked and lost | {r['acked_lost']} |",
        f"| acked whose run had not finished at the end | {r['acked_not_completed']} |",
        f"| duplicate side effects | {r['duplicate_side_effects']} |",
        f"| 5xx / connection errors | {r['five_xx']} / {r['errors']} |",
        f"| responses | {r['statuses']} |",
        f"| prune runs (failed) / events pruned | {r['prune_runs']} ({r['prune_failures']}) / "
        f"{r['pruned']:,} |",
        f"| sending / drain | {r['send_seconds']:.0f} s / {r['drain_seconds']:.0f} s |",
        f"| load average before / after | {r['load_average_before']} / {r['load_average_after']} |",
        "",
        "| process | RSS first | after warm-up | last | max after warm-up | spread after "
        "warm-up | fds first | after warm-up | last | min-max after warm-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, p in summary["processes"].items():
        low, high = p["fds_min_max_after_warmup"]
        out.append(
            f"| {label} | {p['rss_mib_first']} MiB | {p['rss_mib_after_warmup']} MiB | "
            f"{p['rss_mib_last']} MiB | {p['rss_mib_max_after_warmup']} MiB | "
            f"{p['rss_spread_after_warmup_pct']}% | {p['fds_first']} | {p['fds_after_warmup']} "
            f"| {p['fds_last']} | {low}-{high} |"
        )
    out += [
        "",
        "| time | acked | acks/s | runs done/s | backlog | rows | DB + WAL | serve RSS / fds "
        "| worker RSS | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    samples, shown, previous = r["samples"], [], None
    for s in samples:
        if previous is None or s["t"] - previous["t"] >= every or s is samples[-1]:
            shown.append((previous, s))
            previous = s
    for before, s in shown:
        dt = s["t"] - before["t"] if before else 0
        acks = (s["acked"] - before["acked"]) / dt if before and dt else 0
        done = (s["done"] - before["done"]) / dt if before and dt else 0
        procs = s["procs"]
        serve = procs.get("serve", {})
        workers = " / ".join(f"{v['rss_kib'] / 1024:.0f}" for k, v in procs.items() if k != "serve")
        out.append(
            f"| {s['t'] / 60:.0f} min | {s['acked']:,} | {acks:.0f} | {done:.0f} | "
            f"{s['acked'] - s['done']:,} | {s['rows']:,} | "
            f"{(s['db_bytes'] + s['wal_bytes']) / 2**20:.0f} MiB | "
            f"{serve.get('rss_kib', 0) / 1024:.0f} MiB / {serve.get('fds', 0)} | "
            f"{workers} MiB | {s['load']} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="print a saved soak.json as markdown, exit")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=250)
    parser.add_argument("--in-flight", type=int, default=128, help="unanswered requests, max")
    parser.add_argument("--retention", default="5m", help="hookline prune --older-than")
    parser.add_argument("--prune-every", type=float, default=60)
    parser.add_argument("--sample-every", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=600, help="seconds before steady state")
    parser.add_argument("--max-seconds", type=float, default=0, help="stop sending after (0: no)")
    parser.add_argument("--drain-seconds", type=float, default=600)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return
    # Installed first, so a signal at any point still stops the server this bench started.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: SIGNALS.append(number))
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="hookline-soak-"))
    print(f"work directory {workdir}", flush=True)
    try:
        result = uvloop.run(run(args, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(result, args.warmup)
    print_summary(result, summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "soak.json"
    out.write_text(
        json.dumps(
            {
                "bench": "soak",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "cpus": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": load_average(),
                "summary": summary,
                **result,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
