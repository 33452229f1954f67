"""Jobs gateway enqueue throughput against webhook ingest, in the same run.

    .venv/bin/python bench/jobs_enqueue.py     # --seconds 10 --connections 64 --rounds 2

Three targets, each a fresh ``hookline serve --workers 0`` on SQLite in a temp dir (durable:
WAL + ``synchronous=FULL``; every 2xx is sent after its commit), loaded with ``wrk`` at
saturation (closed loop, 64 connections, every request different):

- **webhooks**: ``POST /webhooks/stripe``, verified Stripe events, no handler: the ingest
  figure of ``bench/ingest.py`` (one row per event);
- **webhooks + run**: the same, with one handler matching, so each event also gets a run;
- **jobs**: ``POST /jobs/bench-report`` with ``Authorization: Bearer``, a unique
  ``Idempotency-Key`` per request and the *same bodies* as the webhooks as payload,
  validated by a pydantic model and fingerprinted; each stored with its run.

The rounds interleave the targets (A B C A B C …) so that noise from other programs on the
machine spreads over all of them; the figure per target is its median round. After each
round the database is checked: every acknowledged job or event is stored. The result: jobs
per second as a fraction of the webhook figure (the issue's target: at least 0.8).

Only loopback addresses are used, every duration is bounded, and every process started here
is stopped here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ingest import (
    BENCH,
    HOST,
    PYTHON,
    ROOT,
    SECRET,
    Hookline,
    Signed,
    machine,
    make_events,
    oracle_check,
    run_wrk,
    wait_for_quiet,
    write_wrk_files,
)

API_KEY = "bench-api-key-0123456789abcdef"
JOB_PATH = "/jobs/bench-report"


class Webhooks(Hookline):
    """``bench/ingest.py``'s hookline target, optionally with a handler for every event."""

    handlers: tuple[str, ...] = ()

    def command(self) -> tuple[list[str], dict[str, str]]:
        config = self.workdir / f"{self.name}.toml"
        handlers = json.dumps(list(self.handlers))
        config.write_text(
            f"""
[server]
host = "{HOST}"
graceful_timeout_seconds = 10

[storage]
url = "sqlite:///{self.db}"

[admin]
token = "bench-admin-token-0123456789"

[api]
keys = ["{API_KEY}"]

[pipeline]
handlers = {handlers}
workers = 0

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["{SECRET}"]
"""
        )
        args = [PYTHON, "-m", "hookline.cli", "serve", "--config", str(config)]
        args += ["--port", str(self.port), "--workers", "0"]
        return args, {"PYTHONPATH": os.pathsep.join([str(BENCH), str(ROOT)])}


class WebhooksWithRun(Webhooks):
    handlers = ("handlers_enqueue",)


class Jobs(Webhooks):
    handlers = ("handlers_enqueue",)
    ack_field = "jobId"
    stored_ids_sql = "SELECT id FROM events WHERE source = 'jobs'"


def write_job_files(events: list[Signed], prefix: Path, threads: int, tag: str) -> None:
    """``<idempotency key>\\t<body>`` lines for ``wrk_jobs.lua``; the bodies are the events'."""
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(f"{prefix}.{k}", "wb")) for k in range(threads)]
        for i, event in enumerate(events):
            key = f"{tag}-{i:08d}"
            files[i % threads].write(key.encode() + b"\t" + event.body + b"\n")


def one_round(target: Hookline, load: Path, args: argparse.Namespace, jobs: bool) -> dict[str, Any]:
    target.start()
    try:
        wrk_args: dict[str, Any] = {}
        if jobs:
            wrk_args = {"script": BENCH / "wrk_jobs.lua", "script_args": (JOB_PATH, API_KEY)}
        phase = run_wrk(
            target, load, args.threads, args.connections, args.seconds, cpu=True, **wrk_args
        )
    finally:
        target.stop()
    stored = target.stored_ids()
    missing = len(phase.acked - stored)
    extra = len(stored - phase.acked)
    f = phase.figures
    ok = missing == 0 and extra <= phase.unanswered and f["non_200"] == 0
    cpu = f.get("server_cpu", {})
    # Server CPU per accepted request: steadier than req/s when other programs share the
    # machine (they slow every target, but barely change what one request costs).
    us = cpu.get("total_cores", 0) / max(f["accepted_per_s"], 1) * 1e6
    print(
        f"   {target.name:<15} {f['accepted_per_s']:8.0f}/s  p50 {f['p50_us'] / 1000:6.2f} ms  "
        f"p99 {f['p99_us'] / 1000:6.2f} ms  errors {f['non_200'] + f['socket_errors']}  "
        f"server cpu {cpu.get('total_cores', '?')} ({us:.0f} us/request; others on the "
        f"machine {cpu.get('others_on_machine_cores', '?')})  stored ok: {ok}",
        flush=True,
    )
    return {"figures": f, "missing": missing, "extra": extra, "ok": ok, "cpu_us_per_request": us}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="each saturation run (s)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per target")
    parser.add_argument("--max-rate", type=int, default=9_000, help="requests made per second")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 60 or not 1 <= args.rounds <= 5:
        parser.error("bounded: --seconds 1..60, --rounds 1..5")

    per_run = args.max_rate * args.seconds
    events = make_events(per_run, time.time() + 60)  # fresh for the whole run
    oracle_check(events[0])
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plan": {**vars(args), "out": str(args.out), "events_per_run": per_run},
    }
    rounds: dict[str, list[dict[str, Any]]] = {"webhooks": [], "webhooks+run": [], "jobs": []}
    with tempfile.TemporaryDirectory(prefix="hookline-bench-jobs-") as tmp:
        work = Path(tmp)
        results["machine"] = machine(work)
        print(f"machine: {results['machine']}", flush=True)
        for n in range(args.rounds):
            # every round gets requests no earlier round sent (new ids, new keys)
            stripe_load = work / f"stripe-{n}"
            job_load = work / f"jobs-{n}"
            batch = make_events(per_run, time.time() + 60) if n else events
            write_wrk_files(batch, stripe_load, args.threads)
            write_job_files(batch, job_load, args.threads, f"r{n}")
            print(f"\n== round {n + 1} (machine busy {wait_for_quiet()} cores before)", flush=True)
            targets: list[tuple[str, Hookline, Path, bool]] = [
                ("webhooks", Webhooks(f"webhooks-{n}", work), stripe_load, False),
                ("webhooks+run", WebhooksWithRun(f"webhooks-run-{n}", work), stripe_load, False),
                ("jobs", Jobs(f"jobs-{n}", work), job_load, True),
            ]
            for label, target, load, is_jobs in targets:
                rounds[label].append(one_round(target, load, args, is_jobs))
    summary = {
        label: statistics.median(r["figures"]["accepted_per_s"] for r in runs)
        for label, runs in rounds.items()
    }
    cpu_us = {
        label: statistics.median(r["cpu_us_per_request"] for r in runs)
        for label, runs in rounds.items()
    }
    results["rounds"] = rounds
    results["median_per_s"] = summary
    results["median_cpu_us_per_request"] = cpu_us
    ratio = summary["jobs"] / summary["webhooks"]
    ratio_run = summary["jobs"] / summary["webhooks+run"]
    results["jobs_over_webhooks"] = round(ratio, 3)
    results["jobs_over_webhooks_with_run"] = round(ratio_run, 3)
    print("\nmedian accepted/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in summary.items()))
    print(f"jobs / webhooks = {ratio:.2f}  (target >= 0.80: {'met' if ratio >= 0.8 else 'MISSED'})")
    print(f"jobs / webhooks with a run = {ratio_run:.2f}")
    print(
        "median server CPU per accepted request: "
        + ", ".join(f"{k} {v:.0f} us" for k, v in cpu_us.items())
        + f"  (webhooks / jobs = {cpu_us['webhooks'] / cpu_us['jobs']:.2f})"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"jobs-enqueue-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    ok = all(r["ok"] for runs in rounds.values() for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
