"""The Next.js Route Handler's answer time while the jobs it enqueues take seconds.

    .venv/bin/python bench/nextjs_enqueue.py    # --rate 20 --seconds 20 --render-seconds 3

Started here, in a temp dir, on loopback only: ``hookline serve`` with the demo config
(SQLite, 2 workers, the example ``generate-report`` job, whose render step sleeps
``--render-seconds``) and ``next start`` of ``examples/nextjs`` (built as ``make test``
builds it, by ``scripts/prepare.mjs``), the demo config's ``notify_url`` pointing at it, so
every job also calls the app back while the load runs.

Load: an open loop at ``--rate`` requests/s for ``--seconds`` (after ``--warmup`` requests
that are not recorded), each ``POST /api/reports`` with its own ``{"reportId"}``. A request
is due at ``start + i / rate`` whatever happened to earlier ones, and its latency counts
from that time to the whole answer (safe from coordinated omission). The client is httpx,
whose own cost is in the figures. Then the same load straight at hookline's ``POST
/jobs/generate-report``, for what the Next.js hop adds.

Checks: every answer is 202 ``{"jobId", "status": "queued"}``; afterwards (bounded) every
job the app enqueued has succeeded, and their durations (created → finished) are reported.
Figures go to stdout and ``bench/results/nextjs_enqueue.json``; every process started here
is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from ingest import wait_for_quiet  # noqa: E402
from loadgen import exit_on_sigterm, load_average, percentile  # noqa: E402

from tests.support.clients import all_events  # noqa: E402
from tests.support.nextjs import DEMO_API_KEY, NextApp, prepare  # noqa: E402
from tests.support.server import HooklineProcess, demo_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ADMIN = {"Authorization": "Bearer demo-admin-token"}
TIMEOUT = 30.0  # seconds; an answer later than this counts as an error


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds, from the due time
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    max_lag: float = 0.0  # how late the generator itself was at worst

    def summary(self) -> dict[str, Any]:
        ms = [x * 1000 for x in self.latencies]
        return {
            "requests": len(ms),
            "statuses": self.statuses,
            "errors": self.errors,
            "p50_ms": round(percentile(ms, 50), 2),
            "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2),
            "max_ms": round(max(ms), 2) if ms else None,
            "generator_max_lag_ms": round(self.max_lag * 1000, 2),
        }


async def open_loop(
    url: str,
    headers: dict[str, str],
    bodies: list[dict[str, Any]],
    rate: float,
    warmup: int,
    phase: Phase,
) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits, headers=headers) as client:

        async def one(i: int, body: dict[str, Any], due: float) -> None:
            try:
                response = await client.post(url, json=body)
            except httpx.HTTPError as exc:
                kind = type(exc).__name__
                phase.errors[kind] = phase.errors.get(kind, 0) + 1
                return
            done = time.perf_counter()
            answer = response.json()
            ok = response.status_code == 202 and answer == {
                "jobId": answer.get("jobId"),
                "status": "queued",
            }
            if not ok:
                phase.errors["unexpected answer"] = phase.errors.get("unexpected answer", 0) + 1
            if i < warmup:
                return
            phase.latencies.append(done - due)
            phase.statuses[response.status_code] = phase.statuses.get(response.status_code, 0) + 1
            if ok:
                phase.job_ids.append(answer["jobId"])

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        for i, body in enumerate(bodies):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                phase.max_lag = max(phase.max_lag, -delay)
            task = asyncio.create_task(one(i, body, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def wait_for_jobs(hookline: HooklineProcess, job_ids: list[str], patience: float) -> list[float]:
    """Bounded wait until every job succeeded; their durations (created → finished)."""
    wanted = set(job_ids)
    deadline = time.monotonic() + patience
    with httpx.Client(base_url=hookline.url, headers=ADMIN, timeout=30) as admin:
        while True:
            done = {e["id"] for e in all_events(admin, source="jobs", status="succeeded")}
            if wanted <= done or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    missing = wanted - done
    if missing:
        raise SystemExit(f"{len(missing)} of {len(wanted)} jobs had not succeeded in {patience} s")
    durations = []
    with httpx.Client(
        base_url=hookline.url, headers={"Authorization": f"Bearer {DEMO_API_KEY}"}, timeout=30
    ) as api:
        for job_id in job_ids:
            job = api.get(f"/jobs/{job_id}").json()
            durations.append(seconds_between(job["createdAt"], job["updatedAt"]))
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="recorded load, per phase")
    parser.add_argument("--warmup", type=int, default=50, help="first requests not recorded")
    parser.add_argument("--render-seconds", type=float, default=3.0, help="each job's render")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    args = parser.parse_args()
    exit_on_sigterm()
    prepare()

    count = args.warmup + int(args.rate * args.seconds)
    results: dict[str, Any] = {"args": vars(args)}
    if not args.no_wait:  # other programs' CPU use skews every figure: wait (bounded)
        results["other_cores_busy_before"] = wait_for_quiet()
    results["load_average_before"] = load_average()
    with tempfile.TemporaryDirectory(prefix="hookline-nextjs-bench-") as tmp:
        workdir = Path(tmp)
        hookline = HooklineProcess(
            workdir,
            "",
            env={
                "HOOKLINE_DEMO_OUTBOX": str(workdir / "outbox"),
                "HOOKLINE_DEMO_RENDER_SECONDS": str(args.render_seconds),
            },
        )
        app = NextApp(workdir, {})
        hookline.config_path.write_text(
            demo_config(
                f"sqlite:///{workdir / 'demo.db'}",
                hookline.port,
                handlers=True,
                workers=2,
                notify_url=f"{app.url}/api/hookline",
            )
        )
        app.env["HOOKLINE_URL"] = hookline.url
        hookline.start()
        try:
            app.start()
            via_app = Phase("Next.js Route Handler (POST /api/reports)")
            bodies = [{"reportId": f"bench-{i:06d}"} for i in range(count)]
            asyncio.run(
                open_loop(f"{app.url}/api/reports", {}, bodies, args.rate, args.warmup, via_app)
            )
            direct = Phase("hookline gateway (POST /jobs/generate-report)")
            payloads = [{"report_id": f"direct-{i:06d}"} for i in range(count)]
            auth = {"Authorization": f"Bearer {DEMO_API_KEY}"}
            url = f"{hookline.url}/jobs/generate-report"
            asyncio.run(open_loop(url, auth, payloads, args.rate, args.warmup, direct))
            results["load_average_after"] = load_average()
            patience = 60 + 2 * count * args.render_seconds / 64
            durations = wait_for_jobs(hookline, via_app.job_ids, patience)
            callbacks = app.logs().count('"msg":"hookline callback verified"')
        finally:
            app.stop()
            hookline.stop()

    for phase in (via_app, direct):
        results[phase.name] = phase.summary()
    results["jobs"] = {
        "count": len(durations),
        "duration_s_median": round(statistics.median(durations), 2),
        "duration_s_min": round(min(durations), 2),
        "duration_s_max": round(max(durations), 2),
        "callbacks_verified_by_the_app": callbacks,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "nextjs_enqueue.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"\n{count - args.warmup} recorded requests per phase at {args.rate:g}/s")
    print(f"{'':48} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  answers")
    for phase in (via_app, direct):
        s = phase.summary()
        print(
            f"{phase.name:48} {s['p50_ms']:>6.1f}ms {s['p90_ms']:>6.1f}ms "
            f"{s['p99_ms']:>6.1f}ms {s['max_ms']:>6.1f}ms  {s['statuses']} errors={s['errors']}"
        )
    jobs = results["jobs"]
    print(
        f"jobs enqueued through the app: {jobs['count']} succeeded, each took "
        f"{jobs['duration_s_min']}-{jobs['duration_s_max']} s (median "
        f"{jobs['duration_s_median']} s); callbacks verified by the app: {callbacks}"
    )
    print(
        f"load average before/after: {results['load_average_before']}/"
        f"{results['load_average_after']}"
    )


if __name__ == "__main__":
    main()
