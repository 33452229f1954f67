"""A chaos run on PostgreSQL: ``serve`` and ``hookline worker`` processes under load while
processes are killed (``kill -9``) and restarted, one worker is paused past its lease, and
(optionally) the database restarts; then every promise is checked from the outside.

Used by ``bench/chaos.py`` (the long run, with a PostgreSQL restart) and by
``tests/e2e/test_chaos.py`` (a smaller run in ``make test``, without one). Loopback only;
every loop is bounded in count and time; every process started is stopped.

Checked at the end (side effects counted from ``chaos_handlers``' lines, not from
hookline's tables, except where the tables are what is checked):

1. every event that got a 200 is stored;
2. every run of those events ends ``succeeded``;
3. every step's side effect happened at least once, and at most once in processes that
   were never killed nor paused: only a step in flight in a killed or paused process may
   have run once more;
4. the history shows exactly one successful attempt of each step.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from hookline.providers import StripeProvider
from tests.support.clients import stripe_body
from tests.support.server import STRIPE_SECRET, HooklineProcess, base_config

HANDLERS = ["tests.support.chaos_handlers"]
EVENT_TYPE = "chaos.run"
PG_VERSION = "15"


@dataclass
class ChaosPlan:
    admin_url: str  # a PostgreSQL database to connect to for CREATE/DROP DATABASE
    events: int = 5000
    seconds: float = 60.0  # the load is spread over this long; faults happen meanwhile
    serves: int = 2
    workers: int = 3
    lease_seconds: float = 10.0
    kill_every: float = 3.0
    pause_seconds: float = 12.0  # longer than the lease
    restart_postgres: bool = False
    settle_seconds: float = 180.0  # after the load: how long every run may take to finish
    resend_seconds: float = 300.0  # after the load: how long unacknowledged events are resent
    seed: int = 10
    progress: bool = False  # print how far it got every few seconds


@dataclass
class ChaosReport:
    sent: int = 0
    accepted: int = 0
    resends: int = 0
    kills: list[str] = field(default_factory=list)
    paused: str = ""
    postgres_restart_seconds: float | None = None
    seconds: float = 0.0
    stored: int = 0
    runs_by_status: dict[str, int] = field(default_factory=dict)
    executions: dict[str, int] = field(default_factory=dict)  # step → lines
    repeated: dict[str, int] = field(default_factory=dict)  # step → events run more than once
    repeated_outside_faults: list[str] = field(default_factory=list)
    missing_effects: list[str] = field(default_factory=list)
    attempts_not_one: list[str] = field(default_factory=list)
    lease_lost_lines: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _database_url(admin_url: str, name: str) -> str:
    base, _, _db = admin_url.rpartition("/")
    return f"{base}/{name}"


def ensure_postgres_running() -> None:
    """The shared cluster must be up when we finish, whatever happened."""
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "start"],
        capture_output=True,
        check=False,
    )


class Chaos:
    def __init__(self, plan: ChaosPlan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.report = ChaosReport()
        self.random = random.Random(plan.seed)
        self.db_name = f"hookline_chaos_{secrets.token_hex(4)}"
        self.db_url = _database_url(plan.admin_url, self.db_name)
        self.faulty_pids: set[int] = set()  # processes killed or paused: steps may repeat
        self.accepted: set[str] = set()
        self._stop_faults = threading.Event()
        self._lock = threading.Lock()  # a process is never killed while being paused
        self._paused: HooklineProcess | None = None
        env = {"HOOKLINE_CHAOS_DIR": str(workdir)}
        config = base_config(
            self.db_url,
            handlers=HANDLERS,
            pipeline={
                "lease_seconds": plan.lease_seconds,
                "poll_interval_seconds": 0.02,
                "backoff_base_seconds": 0.2,
                "backoff_max_seconds": 2.0,
                "concurrency": 16,
            },
        )
        self.serves = [HooklineProcess(workdir, config, env=env) for _ in range(plan.serves)]
        self.workers = [
            HooklineProcess(workdir, config, command="worker", env=env) for _ in range(plan.workers)
        ]

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        started = time.monotonic()
        with _admin(self.plan.admin_url) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db_name)))
        try:
            for proc in self.serves:
                proc.start()
            for proc in self.workers:
                proc.start(wait=False)
            faults = threading.Thread(target=self._faults, name="chaos-faults", daemon=True)
            faults.start()
            try:
                asyncio.run(self._load())
            finally:
                self._stop_faults.set()
                faults.join()
            self._settle()
            self._check()
        finally:
            for proc in [*self.workers, *self.serves]:
                if proc.proc is not None and proc.proc.poll() is None:
                    os.kill(proc.proc.pid, signal.SIGCONT)
                proc.stop()
            if self.plan.restart_postgres:
                ensure_postgres_running()
            self.report.lease_lost_lines = sum(p.logs().count("lease lost") for p in self.workers)
            self._drop_database()
        self.report.seconds = round(time.monotonic() - started, 1)
        return self.report

    def _drop_database(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with _admin(self.plan.admin_url) as conn:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(self.db_name)
                        )
                    )
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    # -- load: every event is resent until it gets a 200 (as a provider does) ------------------

    async def _load(self) -> None:
        plan = self.plan
        signer = StripeProvider([STRIPE_SECRET])
        interval = plan.seconds / plan.events
        deadline = time.monotonic() + plan.seconds + plan.resend_seconds  # bounded too
        # Few requests in flight at once: httpx's pool costs O(waiting requests) per request
        in_flight = asyncio.Semaphore(48)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=5, limits=limits) as client:

            async def deliver(n: int) -> None:
                event_id = f"evt_chaos_{n:05d}"
                body = stripe_body(event_id, EVENT_TYPE, {"n": n})
                tries = 0
                while tries == 0 or time.monotonic() < deadline:
                    server = self.serves[(n + tries) % len(self.serves)]
                    headers = {
                        "content-type": "application/json",
                        **signer.sign(body, time.time()),
                    }
                    tries += 1
                    try:
                        async with in_flight:
                            response = await client.post(
                                f"{server.url}/webhooks/stripe", content=body, headers=headers
                            )
                        if response.status_code == 200:
                            self.accepted.add(event_id)
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.2)
                self.report.resends += tries - 1

            tasks: list[asyncio.Task[None]] = []
            start = time.monotonic()
            for n in range(plan.events):
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(deliver(n)))
                self.report.sent += 1
            await asyncio.gather(*tasks)
        self.report.accepted = len(self.accepted)

    # -- faults ------------------------------------------------------------------------------

    def _faults(self) -> None:
        """Faults while the events are being delivered (at most ``seconds`` + 60 s)."""
        plan = self.plan
        start = time.monotonic()
        paused = restarted = False
        while not self._stop_faults.wait(plan.kill_every * self.random.uniform(0.6, 1.4)):
            elapsed = time.monotonic() - start
            if self.plan.progress:
                print(
                    f"  {elapsed:5.0f} s: {len(self.accepted)} acknowledged, "
                    f"{len(self.report.kills)} kills",
                    flush=True,
                )
            if elapsed > plan.seconds + 60 or len(self.accepted) == plan.events:
                return
            if not paused and elapsed > plan.seconds / 4:
                paused = True
                threading.Thread(target=self._pause_one, daemon=True).start()
                continue
            if plan.restart_postgres and not restarted and elapsed > plan.seconds / 2:
                restarted = True
                self._restart_postgres()
                continue
            self._kill_one()

    def _kill_one(self) -> None:
        with self._lock:
            candidates = [p for p in (*self.serves, *self.workers) if p is not self._paused]
            proc = self.random.choice(candidates)
            if proc.proc is None or proc.proc.poll() is not None:
                return
            pid = proc.proc.pid
            if proc.command == "worker":
                self.faulty_pids.add(pid)
            proc.kill9()
            self.report.kills.append(f"{proc.name} (pid {pid})")
        time.sleep(0.3)
        proc.start(wait=False)

    def _pause_one(self) -> None:
        with self._lock:
            proc = self.random.choice([p for p in self.workers if p.proc is not None])
            assert proc.proc is not None
            pid = proc.proc.pid
            self.faulty_pids.add(pid)
            self._paused = proc
            os.kill(pid, signal.SIGSTOP)
        self.report.paused = f"{proc.name} (pid {pid}) for {self.plan.pause_seconds:.0f} s"
        time.sleep(self.plan.pause_seconds)
        with self._lock:
            os.kill(pid, signal.SIGCONT)
            self._paused = None

    def _restart_postgres(self) -> None:
        began = time.monotonic()
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "restart"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        self.report.postgres_restart_seconds = round(time.monotonic() - began, 2)
        ensure_postgres_running()

    # -- the end -----------------------------------------------------------------------------

    def _settle(self) -> None:
        deadline = time.monotonic() + self.plan.settle_seconds
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.db_url, connect_timeout=5) as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM runs WHERE status <> 'succeeded'"
                    ).fetchone()
                    total = conn.execute("SELECT count(*) FROM runs").fetchone()
                if row and total and row[0] == 0 and total[0] >= len(self.accepted):
                    return
            except psycopg.OperationalError:
                pass
            time.sleep(0.5)

    def _check(self) -> None:
        r = self.report
        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            stored = {row[0] for row in conn.execute("SELECT provider_event_id FROM events")}
            r.stored = len(stored & self.accepted)
            r.runs_by_status = dict(
                conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
            )
            successes = Counter(
                (row[0], row[1])
                for row in conn.execute(
                    "SELECT e.provider_event_id, a.step_name FROM step_attempts a "
                    "JOIN events e ON e.id = a.event_id WHERE a.outcome = 'succeeded'"
                )
            )
            not_succeeded = conn.execute(
                "SELECT e.provider_event_id, r.status FROM runs r JOIN events e "
                "ON e.id = r.event_id WHERE r.status <> 'succeeded' LIMIT 20"
            ).fetchall()
        missing = sorted(self.accepted - stored)
        if missing:
            r.failures.append(f"{len(missing)} acknowledged events not stored: {missing[:5]}")
        if not_succeeded or sum(r.runs_by_status.values()) < len(self.accepted):
            r.failures.append(f"runs not succeeded: {r.runs_by_status} {not_succeeded[:5]}")
        effects: dict[tuple[str, str], list[int]] = {}
        path = self.workdir / "effects.log"
        for line in path.read_text().splitlines() if path.exists() else []:
            step, event_id, pid = line.split()
            effects.setdefault((step, event_id), []).append(int(pid))
        for step in ("a", "b"):
            r.executions[step] = sum(len(p) for (s, _e), p in effects.items() if s == step)
            r.repeated[step] = sum(1 for (s, _e), p in effects.items() if s == step and len(p) > 1)
            for event_id in sorted(self.accepted):
                pids = effects.get((step, event_id), [])
                if not pids:
                    r.missing_effects.append(f"{step} {event_id}")
                healthy = [pid for pid in pids if pid not in self.faulty_pids]
                if len(healthy) > 1:
                    r.repeated_outside_faults.append(f"{step} {event_id} {pids}")
                if successes.get((event_id, step), 0) != 1:
                    r.attempts_not_one.append(
                        f"{step} {event_id}: {successes.get((event_id, step), 0)}"
                    )
        if r.missing_effects:
            r.failures.append(f"steps that never ran: {r.missing_effects[:5]}")
        if r.repeated_outside_faults:
            r.failures.append(
                f"steps repeated outside killed/paused processes: {r.repeated_outside_faults[:5]}"
            )
        if r.attempts_not_one:
            r.failures.append(f"not one successful attempt per step: {r.attempts_not_one[:5]}")
