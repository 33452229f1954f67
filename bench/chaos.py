"""Chaos on PostgreSQL: 2 ``serve`` + 3 ``hookline worker`` processes, 5,000 events, a
random process ``kill -9``'d every few seconds and restarted, one worker SIGSTOPped for
longer than the lease, and one restart of the PostgreSQL cluster in the middle.

Then it checks, from the outside: every event that got a 200 is stored, every run ends
``succeeded``, every step's side effect happened exactly once — except a step in flight
in a killed or paused process, which may have run once more — and the history shows one
successful attempt per step (``tests/support/chaos.py`` has the details).

It restarts the shared PostgreSQL cluster (``pg_ctlcluster 15 main restart``): a brief
outage for anyone else using it; the cluster is started again at the end whatever
happens. ``--no-restart`` leaves it alone.

    .venv/bin/python bench/chaos.py [--events 5000] [--seconds 60] [--lease 10]
        [--kill-every 3] [--pause 12] [--no-restart] [--seed 10]

Prints the figures and writes ``bench/results/chaos.json``. Exit status 1 if a check
failed. Loopback only; bounded in time; every process started is stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import exit_on_sigterm, load_average  # noqa: E402

from tests.support.chaos import Chaos, ChaosPlan  # noqa: E402
from tests.support.pg import ADMIN_URL  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--pause", type=float, default=12.0)
    parser.add_argument("--no-restart", action="store_true", help="leave PostgreSQL alone")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    exit_on_sigterm()
    plan = ChaosPlan(
        admin_url=ADMIN_URL,
        events=args.events,
        seconds=args.seconds,
        lease_seconds=args.lease,
        kill_every=args.kill_every,
        pause_seconds=args.pause,
        restart_postgres=not args.no_restart,
        seed=args.seed,
        progress=True,
    )
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="hookline-chaos-") as tmp:
        report = Chaos(plan, Path(tmp)).run()
    r = report
    print(
        f"\nChaos on PostgreSQL: {plan.serves} serve + {plan.workers} workers, "
        f"lease {plan.lease_seconds:g} s"
    )
    print(
        f"events sent {r.sent}, acknowledged {r.accepted} (resends {r.resends}), stored {r.stored}"
    )
    print(
        f"kills: {len(r.kills)}; paused: {r.paused or '-'}; PostgreSQL restart: "
        f"{r.postgres_restart_seconds if r.postgres_restart_seconds is not None else '-'} s"
    )
    print(f"runs by status: {r.runs_by_status}")
    for step in ("a", "b"):
        print(
            f"step {step}: {r.executions.get(step, 0)} executions, "
            f"{r.repeated.get(step, 0)} events where it ran more than once "
            "(allowed only in killed/paused processes)"
        )
    print(f"'lease lost' log lines: {r.lease_lost_lines}; total {r.seconds} s")
    print("checks: " + ("ALL PASSED" if r.ok else "FAILED:\n  " + "\n  ".join(r.failures)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "chaos.json"
    out.write_text(
        json.dumps(
            {
                "bench": "chaos",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average_before": load_before,
                "load_average_after": load_average(),
                "plan": {k: v for k, v in dataclasses.asdict(plan).items() if k != "admin_url"},
                "report": {**dataclasses.asdict(r), "ok": r.ok},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {out.relative_to(ROOT)}")
    sys.exit(0 if r.ok else 1)


if __name__ == "__main__":
    main()
