"""``hookline worker``: claims due runs with a lease and executes them.

Lifecycle (one process): register → loop {claim up to the free concurrency,
start one tracked task per run, heartbeat the leases} → on SIGTERM stop
claiming, let in-flight runs finish within ``shutdown_grace_seconds``, then
cancel the rest and release them (their in-flight step runs again later:
at-least-once for a step in flight, exactly-once for steps that succeeded).
A second SIGTERM/SIGINT exits at once; the leases then expire and another
worker reclaims the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx

from hookline.config import Settings
from hookline.errors import StoreError
from hookline.ids import new_id
from hookline.notify import Notifier
from hookline.pipeline import Registry
from hookline.redaction import Redactor, Secrets
from hookline.runner import Runner
from hookline.store import open_store
from hookline.store.base import ClaimedRun, RunOutcome, Store

log = logging.getLogger("hookline.worker")
MAX_CLAIM_BATCH = 64
STORE_RETRY_SECONDS = 1.0
MAX_IDLE_POLL_SECONDS = 1.0
MAX_LOGGED_ERROR_CHARS = 500


class Worker:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: Store,
        runner: Runner,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.id = new_id("wrk")
        self._config = settings.pipeline
        self._redact = Redactor(settings.secret_values())
        self._store = store
        self._runner = runner
        self._clock = clock
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._slot_free = asyncio.Event()
        self._started_at = clock()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        await self._store.worker_heartbeat(
            self.id, socket.gethostname(), os.getpid(), self._started_at, self._clock()
        )
        heartbeat = asyncio.create_task(self._heartbeat_loop(stop), name="heartbeat")
        log.info("worker started", extra={"worker": self.id, "pid": os.getpid()})
        try:
            await self._claim_loop(stop)
            await self._drain()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self._store.worker_stopped(self.id)
            log.info("worker stopped", extra={"worker": self.id})

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        c = self._config
        idle_claims = 0
        while not stop.is_set():
            free = c.concurrency - len(self._in_flight)
            if free <= 0:
                self._slot_free.clear()
                await _first_of(stop.wait(), self._slot_free.wait())
                continue
            now = self._clock()
            claimed: list[ClaimedRun] = []
            due = False
            try:
                due = await self._store.has_due_runs(now)
                if due:
                    claimed = await self._store.claim_runs(
                        self.id, min(free, MAX_CLAIM_BATCH), c.lease_seconds, now
                    )
            except StoreError as exc:  # e.g. the database restarting: wait, then go on
                log.error("claim failed; retrying", extra={"error": str(exc)})
                await _first_of(stop.wait(), asyncio.sleep(STORE_RETRY_SECONDS))
                continue
            # Due runs that no claim could take (blocked by their key or a held sibling):
            # poll less often, so an idle worker does not write to the store every tick.
            idle_claims = idle_claims + 1 if due and not claimed else 0
            for item in claimed:
                if item.run.id in self._in_flight:  # our own lease expired under us: not twice
                    continue
                task = asyncio.create_task(self._execute(item), name=item.run.id)
                self._in_flight[item.run.id] = task
                task.add_done_callback(self._forget(item.run.id))
            if not claimed:
                wait = min(c.poll_interval_seconds * 2**idle_claims, MAX_IDLE_POLL_SECONDS)
                await _first_of(
                    stop.wait(), self._wait_for_work(max(wait, c.poll_interval_seconds))
                )

    async def _wait_for_work(self, timeout: float) -> None:
        wait = getattr(self._store, "wait_for_work", None)
        if wait is not None:
            await wait(timeout)
        else:
            await asyncio.sleep(timeout)

    def _forget(self, run_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            if self._in_flight.get(run_id) is task:
                del self._in_flight[run_id]
            self._slot_free.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("run task crashed", extra={"run_id": run_id}, exc_info=task.exception())

        return done

    async def _execute(self, claimed: ClaimedRun) -> None:
        run = claimed.run
        started = time.perf_counter()
        try:
            outcome = await self._runner.execute(claimed)
        except asyncio.CancelledError:
            # Shutdown or lost lease: hand the run back without spending the attempt.
            release = RunOutcome(run.id, "queued", available_at=self._clock(), refund_attempt=True)
            await asyncio.shield(self._store.finish_run(self.id, release, self._clock()))
            raise
        kept = await self._store.finish_run(self.id, outcome, self._clock())
        fields = {
            "run_id": run.id,
            "handler": run.handler,
            "attempt": run.attempts,
            "status": outcome.status if kept else "lease_lost",
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if kept and outcome.status == "failed":  # dead letter: an operator must look
            fields.update(attempts=run.attempts, error=self._first_line(outcome.error))
            log.warning("run dead-lettered", extra=fields)
        else:
            log.info("run", extra=fields)

    def _first_line(self, error: str | None) -> str:
        """The error's first line, short, with any configured secret replaced."""
        line = (error or "").strip().split("\n", 1)[0]
        return self._redact(line)[:MAX_LOGGED_ERROR_CHARS]

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        interval = max(0.05, self._config.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            try:
                lost = await self._store.heartbeat(
                    self.id, list(self._in_flight), self._config.lease_seconds, now
                )
                for run_id in lost:  # cancelled by an operator, or reclaimed after a stall
                    task = self._in_flight.get(run_id)
                    if task is not None:
                        task.cancel()
                await self._store.worker_heartbeat(
                    self.id, socket.gethostname(), os.getpid(), self._started_at, now
                )
            except StoreError as exc:  # keep beating: a lost heartbeat loop loses every lease
                log.error("heartbeat failed; retrying", extra={"error": str(exc)})

    async def _drain(self) -> None:
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        log.info("draining", extra={"runs": len(tasks)})
        _done, pending = await asyncio.wait(tasks, timeout=self._config.shutdown_grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def _first_of(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """First SIGTERM/SIGINT: graceful stop. Second: exit at once."""

    def handle() -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def watch_supervisor(pid: int, stop: asyncio.Event, interval: float = 0.5) -> None:
    """Stop gracefully once the ``hookline serve`` that started us is gone."""
    while not stop.is_set():
        if os.getppid() != pid:
            log.warning("supervisor is gone; stopping", extra={"supervisor": pid})
            stop.set()
            return
        await asyncio.sleep(interval)


async def serve_worker(
    settings: Settings, registry: Registry, supervisor_pid: int | None = None
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(
            max_workers=settings.pipeline.concurrency, thread_name_prefix="hookline-step"
        )
    )
    stop = asyncio.Event()
    store = open_store(settings.storage.url)
    await store.open()
    try:
        await store.migrate()
        async with httpx.AsyncClient(timeout=10.0) as client:
            p = settings.pipeline
            notifier = (
                Notifier(p.notify_url, p.notify_secret, client)
                if (p.notify_url and p.notify_secret)
                else None
            )
            runner = Runner(
                store,
                registry,
                p,
                notifier,
                secrets=Secrets(settings.secrets),
                redact=Redactor(settings.secret_values()),
            )
            watchdog = (
                asyncio.create_task(watch_supervisor(supervisor_pid, stop))
                if supervisor_pid is not None
                else None
            )
            try:
                with stop_on_signals(loop, stop):
                    await Worker(settings, registry, store, runner).run(stop)
            finally:
                if watchdog is not None:
                    watchdog.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watchdog
    finally:
        await store.close()


def lower_priority(increment: int) -> None:
    """Yield CPU to the process that answers webhooks (SPEC §3: acks must not slow down)."""
    if increment <= 0:
        return
    try:
        os.nice(increment)
    except OSError as exc:  # e.g. a sandbox that forbids it: run at normal priority
        log.warning("could not lower worker priority", extra={"error": str(exc)})


def run_worker_process(
    settings: Settings, registry: Registry, supervisor_pid: int | None = None
) -> None:
    lower_priority(settings.pipeline.worker_nice)
    try:
        import uvloop

        uvloop.run(serve_worker(settings, registry, supervisor_pid))
    except ImportError:
        asyncio.run(serve_worker(settings, registry, supervisor_pid))
