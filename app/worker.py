"""``hookline worker``: claims due runs with a lease and executes them.

Lifecycle (one process): register → loop {claim up to the free concurrency,
start one tracked task per run, heartbeat the leases} → on SIGTERM stop
claiming, let in-flight runs finish within ``shutdown_grace_seconds``, then
cancel the rest and release them (their in-flight step runs again later:
at-least-once for a step in flight, exactly-once for steps that succeeded).
A second SIGINT exits at once (a second SIGTERM does not: ``stop_on_signals``); the
leases then expire and another worker reclaims the runs.

A worker claims only runs of the handlers it has loaded. Every claim carries a
fencing token; the store refuses the writes of a claim that is over. The worker
gives a run up at once (cancels its task; the next step never starts) when the
store says so — a refused write, or a heartbeat that no longer finds the claim —
and also on its own, when it could not renew the lease for ``lease_seconds``
minus a margin (a partition, a stalled pool): by then another worker may own it.
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
from dataclasses import dataclass

from hookline import logs
from hookline.config import Settings
from hookline.context import Lease, while_held
from hookline.errors import StoreError
from hookline.ids import new_id
from hookline.pipeline import Registry
from hookline.redaction import Redactor, Secrets
from hookline.runner import Runner
from hookline.step_stats import observe_step
from hookline.step_threads import StepThreads
from hookline.store import open_store
from hookline.store.base import ClaimedRun, RunOutcome, Store, WorkerInfo, WorkerStats

log = logging.getLogger("hookline.worker")
MAX_CLAIM_BATCH = 64
STORE_RETRY_SECONDS = 1.0
MAX_IDLE_POLL_SECONDS = 1.0
MAX_LOGGED_ERROR_CHARS = 500
MAX_LEASE_MARGIN_SECONDS = 5.0


def claim_low_water(concurrency: int) -> int:
    """Free slots worth a claim of their own while the worker is busy: a quarter of them
    (at most a quarter of a claim batch). Fewer free slots wait up to a poll interval."""
    return max(1, min(concurrency, MAX_CLAIM_BATCH) // 4)


def lease_timing(lease_seconds: float) -> tuple[float, float]:
    """(heartbeat interval, local margin): a claim not renewed for ``lease - margin`` is
    given up locally, before the store lets another worker take it."""
    return max(0.05, lease_seconds / 4), min(lease_seconds / 4, MAX_LEASE_MARGIN_SECONDS)


@dataclass(slots=True)
class _Running:
    task: asyncio.Task[None]
    lease: Lease
    stopping: bool = False  # its task was cancelled (once: a second cancel would cut short
    #                         the wait for a sync step's thread)

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.lease.cancelling = True  # before the cancel: see context.run_cancelled
            self.task.cancel()


class Worker:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: Store,
        runner: Runner,
        stats: WorkerStats | None = None,
    ) -> None:
        self.id = new_id("wrk")
        self._config = settings.pipeline
        self._redact = Redactor(settings.secret_values())
        self._store = store
        self._runner = runner
        self._handlers = sorted(spec.name for spec in registry.specs)
        self._running: dict[str, _Running] = {}
        self._slot_free = asyncio.Event()
        self._info = WorkerInfo(self.id, socket.gethostname(), os.getpid(), time.time())
        self.stats = stats if stats is not None else WorkerStats()
        self._interval, self._margin = lease_timing(self._config.lease_seconds)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def run(self, stop: asyncio.Event) -> None:
        await self._store.worker_heartbeat(self._info, self.stats)
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        deadlines = asyncio.create_task(self._deadline_loop(), name="lease-deadlines")
        log.info(
            "worker started",
            extra={"worker": self.id, "pid": os.getpid(), "handlers": len(self._handlers)},
        )
        try:
            await self._claim_loop(stop)
            await self._drain()
        finally:
            for task in (heartbeat, deadlines):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:
                await self._store.worker_stopped(self.id, self.stats)
            except StoreError as exc:
                log.error("could not record the worker's stop", extra={"error": str(exc)})
            log.info("worker stopped", extra={"worker": self.id})

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        c = self._config
        idle_claims = 0
        # The last claim took all it asked for: more may be due, so the next one claims at
        # once instead of first asking whether anything is due (a read per claim saved).
        full = False
        low_water = claim_low_water(c.concurrency)
        while not stop.is_set():
            free = c.concurrency - len(self._running)
            if free <= 0:
                self._slot_free.clear()
                await _first_of(stop.wait(), self._slot_free.wait())
                continue
            if full and free < low_water:
                # Busy: let a few more slots free up (bounded by one poll interval), so that
                # one claim takes several runs instead of one claim per finished run.
                self._slot_free.clear()
                await _first_of(
                    stop.wait(),
                    self._slots_free(low_water),
                    asyncio.sleep(c.poll_interval_seconds),
                )
                free = c.concurrency - len(self._running)
            claimed: list[ClaimedRun] = []
            due = False
            sent = time.monotonic()
            try:
                due = full or (
                    bool(self._handlers) and await self._store.has_due_runs(self._handlers)
                )
                if due:
                    sent = time.monotonic()
                    want = min(free, MAX_CLAIM_BATCH)
                    claimed = await self._store.claim_runs(
                        self.id, self._handlers, want, c.lease_seconds
                    )
                    full = len(claimed) == want
            except StoreError as exc:  # e.g. the database restarting: wait, then go on
                full = False
                log.error("claim failed; retrying", extra={"error": str(exc)})
                await _first_of(stop.wait(), asyncio.sleep(STORE_RETRY_SECONDS))
                continue
            # Due runs that no claim could take (blocked by their key or a held sibling):
            # poll less often, so an idle worker does not write to the store every tick.
            idle_claims = idle_claims + 1 if due and not claimed else 0
            for item in claimed:
                # the store's lease started after `sent`: give it up locally before it ends
                lease = Lease(item.claim(self.id), sent + c.lease_seconds - self._margin)
                self._start(item, lease)
            if not claimed:
                wait = min(c.poll_interval_seconds * 2**idle_claims, MAX_IDLE_POLL_SECONDS)
                await _first_of(
                    stop.wait(), self._wait_for_work(max(wait, c.poll_interval_seconds))
                )

    async def _slots_free(self, wanted: int) -> None:
        while self._config.concurrency - len(self._running) < wanted:
            self._slot_free.clear()
            await self._slot_free.wait()

    def _start(self, item: ClaimedRun, lease: Lease) -> None:
        run_id = item.run.id
        previous = self._running.get(run_id)
        if previous is not None:
            # Our own lease ran out under us and we claimed the run again: the old task's
            # claim is over. Stop it, and start the new claim only once it has let go.
            previous.lease.lost = True
            previous.stop()
        task = asyncio.create_task(
            self._execute(item, lease, previous.task if previous else None), name=run_id
        )
        self._running[run_id] = _Running(task, lease)
        task.add_done_callback(self._forget(run_id))

    async def _wait_for_work(self, timeout: float) -> None:
        wait = getattr(self._store, "wait_for_work", None)
        if wait is not None:
            await wait(self._handlers, timeout)
        else:
            await asyncio.sleep(timeout)

    def _forget(self, run_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            running = self._running.get(run_id)
            if running is not None and running.task is task:
                del self._running[run_id]
            self._slot_free.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("run task crashed", extra={"run_id": run_id}, exc_info=task.exception())

        return done

    async def _execute(
        self, claimed: ClaimedRun, lease: Lease, previous: asyncio.Task[None] | None
    ) -> None:
        run = claimed.run
        started = time.perf_counter()
        try:
            if previous is not None:
                await asyncio.wait({previous})
            outcome = await self._runner.execute(claimed, lease)
        except asyncio.CancelledError:
            # Shutdown, operator cancel or lost lease: hand the run back without spending
            # the attempt — unless the claim is over (the store would refuse it anyway).
            if lease.lost:
                self._given_up(claimed)
            else:
                release = RunOutcome(run.id, "queued", refund_attempt=True)
                await asyncio.shield(self._finish(lease, release))
            raise
        if outcome is None:
            self._given_up(claimed)
            return
        kept = await self._finish(lease, outcome)
        if kept:
            self.stats.runs[outcome.status] = self.stats.runs.get(outcome.status, 0) + 1
        attempt = run.attempts - int(outcome.refund_attempt)  # as the store now counts it
        fields = {
            "run_id": run.id,
            "handler": run.handler,
            "attempt": attempt,
            "status": outcome.status if kept else "lease_lost",
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if kept and outcome.status == "failed":  # dead letter: an operator must look
            fields.update(attempts=attempt, error=self._first_line(outcome.error))
            log.warning("run dead-lettered", extra=fields)
        else:
            logs.info(log, "run", fields)

    def _first_line(self, error: str | None) -> str:
        """The error's first line, short, with any configured secret replaced."""
        line = (error or "").strip().split("\n", 1)[0]
        return self._redact(line)[:MAX_LOGGED_ERROR_CHARS]

    @staticmethod
    def _given_up(claimed: ClaimedRun) -> None:
        run = claimed.run
        log.warning(
            "lease lost; run given up",
            extra={"run_id": run.id, "handler": run.handler, "attempt": run.attempts},
        )

    async def _finish(self, lease: Lease, outcome: RunOutcome) -> bool:
        """Write the outcome while the claim is held: a store error is retried (bounded,
        with backoff) rather than losing a run that succeeded."""
        lease.ending = True
        try:
            return await while_held(
                lease, lambda: self._store.finish_run(lease.claim, outcome), "the run's outcome"
            )
        except StoreError as exc:
            log.error(
                "could not write the run's outcome; its lease will expire and the run be reclaimed",
                extra={"run_id": lease.claim.run_id, "error": str(exc)},
            )
            return False

    async def _heartbeat_loop(self) -> None:
        c = self._config
        while True:
            await asyncio.sleep(self._interval)
            running = list(self._running.values())
            sent = time.monotonic()
            try:
                held = await self._store.heartbeat(
                    [r.lease.claim for r in running], c.lease_seconds
                )
            except StoreError as exc:  # keep beating; the deadlines stop what they must
                log.error("heartbeat failed; retrying", extra={"error": str(exc)})
                continue
            for r in running:
                status = held.get(r.lease.claim.run_id)
                if status is None and r.lease.ending:  # finished meanwhile: let it end
                    continue
                if status is None:  # reclaimed after a stall
                    if not r.task.done() and not r.lease.lost:
                        log.warning(
                            "lease lost; stopping the run",
                            extra={"run_id": r.lease.claim.run_id, "reason": "not held"},
                        )
                    r.lease.lost = True
                    r.stop()
                    continue
                r.lease.deadline = max(r.lease.deadline, sent + c.lease_seconds - self._margin)
                if status == "cancelled":  # by an operator: stop; the lease is kept meanwhile
                    r.stop()
            try:
                await self._store.worker_heartbeat(self._info, self.stats)
            except StoreError as exc:
                log.error("worker heartbeat failed", extra={"error": str(exc)})

    async def _deadline_loop(self) -> None:
        """Apart from the heartbeat, which may be stuck in a call to a stalled store."""
        while True:
            deadlines = [
                r.lease.deadline for r in self._running.values() if not (r.stopping or r.lease.lost)
            ]
            wake = min([time.monotonic() + self._interval, *deadlines])
            await asyncio.sleep(max(0.0, wake - time.monotonic()) + 0.001)
            self._stop_expired()

    def _stop_expired(self) -> None:
        """The local rule: a claim not renewed in time may be someone else's by now."""
        now = time.monotonic()
        for r in list(self._running.values()):
            if not r.lease.lost and now > r.lease.deadline:
                log.warning(
                    "lease lost; stopping the run",
                    extra={"run_id": r.lease.claim.run_id, "reason": "not renewed in time"},
                )
                r.lease.lost = True
                r.stop()

    async def _drain(self) -> None:
        tasks = [r.task for r in self._running.values()]
        if not tasks:
            return
        log.info("draining", extra={"runs": len(tasks)})
        _done, pending = await asyncio.wait(tasks, timeout=self._config.shutdown_grace_seconds)
        for r in list(self._running.values()):
            if r.task in pending:
                r.stop()
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
    """First SIGTERM/SIGINT: graceful stop. A second SIGINT (Ctrl-C again): exit at once.

    A later SIGTERM is the same stop: a signal to the process group (Ctrl-C in a terminal,
    systemd's default control-group kill) reaches a worker directly and again when
    ``serve`` relays SIGTERM to its children, and must not cut the drain short (uvicorn
    forces its exit on a second SIGINT only, too)."""

    def handle(sig: signal.Signals) -> None:
        if stop.is_set() and sig == signal.SIGINT:
            log.warning("second signal: exiting now")
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)
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
    # The handlers' sync steps run in step threads; the default executor is left for what
    # else runs in one (asyncio.to_thread in a handler, name lookups).
    loop.set_default_executor(
        ThreadPoolExecutor(
            max_workers=settings.pipeline.concurrency, thread_name_prefix="hookline-pool"
        )
    )
    step_threads = StepThreads(settings.pipeline.concurrency, name="hookline-step")
    stop = asyncio.Event()
    store = open_store(settings.storage)
    await store.open()
    try:
        await store.migrate()
        async with contextlib.AsyncExitStack() as resources:
            p = settings.pipeline
            notifier = None
            if p.notify_url and p.notify_secret:
                # imported only here: httpx is about 8 MB a worker without callbacks never uses
                import httpx

                from hookline.notify import Notifier

                client = await resources.enter_async_context(httpx.AsyncClient(timeout=10.0))
                notifier = Notifier(p.notify_url, p.notify_secret, client)
            stats = WorkerStats()
            runner = Runner(
                store,
                registry,
                p,
                notifier,
                observe_step=lambda o, t: observe_step(stats, o, t),
                secrets=Secrets(settings.secrets),
                redact=Redactor(settings.secret_values()),
                step_threads=step_threads,
            )
            watchdog = (
                asyncio.create_task(watch_supervisor(supervisor_pid, stop))
                if supervisor_pid is not None
                else None
            )
            try:
                with stop_on_signals(loop, stop):
                    await Worker(settings, registry, store, runner, stats).run(stop)
            finally:
                if watchdog is not None:
                    watchdog.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watchdog
    finally:
        step_threads.close()
        await store.close()


def lower_priority(increment: int, *, sched_idle: bool = False) -> None:
    """Yield CPU to the processes that answer webhooks (SPEC §3: acks must not slow down).

    ``increment``: nice, a smaller share of the CPU. ``sched_idle``: Linux's SCHED_IDLE
    class besides, where a worker gets a core only when no other process wants it and an
    HTTP process that wakes takes the core from it at once; at nice alone it waits for the
    worker's time slice to end (docs/benchmarks.md, "Ack isolation"). Both apply to the
    calling thread, the worker's main one, and to every thread it starts after.
    """
    if increment > 0:
        try:
            os.nice(increment)
        except OSError as exc:  # e.g. a sandbox that forbids it: run at normal priority
            log.warning("could not lower worker priority", extra={"error": str(exc)})
    idle_class = getattr(os, "SCHED_IDLE", None)  # Linux (and a few others) only
    if sched_idle and idle_class is not None:
        try:
            os.sched_setscheduler(0, idle_class, os.sched_param(0))
        except OSError as exc:
            log.warning("could not move the worker to SCHED_IDLE", extra={"error": str(exc)})


def run_worker_process(
    settings: Settings, registry: Registry, supervisor_pid: int | None = None
) -> None:
    lower_priority(settings.pipeline.worker_nice, sched_idle=settings.pipeline.worker_sched_idle)
    try:
        import uvloop

        uvloop.run(serve_worker(settings, registry, supervisor_pid))
    except ImportError:
        asyncio.run(serve_worker(settings, registry, supervisor_pid))
