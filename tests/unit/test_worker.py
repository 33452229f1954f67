"""The worker loop in-process, against a real SQLite store in a temp file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hookline.config import PipelineConfig, Settings
from hookline.context import Context
from hookline.errors import StoreError
from hookline.pipeline import Event, HandlerSpec, Registry
from hookline.runner import Runner
from hookline.store import open_store
from hookline.store.base import Claim, NewEvent, NewRun, Store
from hookline.store.sqlite import SQLiteStore
from hookline.worker import Worker


async def ingest_one_run(store: Store, spec: HandlerSpec, max_attempts: int) -> None:
    """Event evt_1 with its run run_1 of ``spec``."""
    run = NewRun("run_1", spec.name, max_attempts)
    event = NewEvent("evt_1", "stripe", "p1", "t", time.time(), {}, b"{}", [run])
    await store.ingest(event, resume_failed=True)


def start_worker(
    store: Store, registry: Registry, pipeline: PipelineConfig
) -> tuple[Worker, asyncio.Event, asyncio.Task[None]]:
    """A worker running on ``store``; set the event and await the task to stop it."""
    worker = Worker(Settings(pipeline=pipeline), registry, store, Runner(store, registry, pipeline))
    stop = asyncio.Event()
    return worker, stop, asyncio.create_task(worker.run(stop))


class FlakyHeartbeatStore(SQLiteStore):
    """The first heartbeat fails, as when the database is briefly unreachable."""

    failures = 1

    async def heartbeat(self, claims: Sequence[Claim], lease_seconds: float) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise StoreError("OperationalError: database is locked")
        return await super().heartbeat(claims, lease_seconds)


async def test_a_failed_heartbeat_neither_loses_leases_nor_runs_a_step_twice(
    tmp_path: Path,
) -> None:
    store = FlakyHeartbeatStore(f"sqlite:///{tmp_path / 'h.db'}")
    await store.open()
    await store.migrate()
    calls: list[float] = []

    async def slow_step() -> str:
        calls.append(time.monotonic())
        await asyncio.sleep(3.0)  # three lease lengths
        return "done"

    async def handle(event: Event, ctx: Context) -> str:
        result: str = await ctx.step("slow", slow_step)
        return result

    spec = HandlerSpec("t:handle", handle, "stripe", "*")
    pipeline = PipelineConfig(lease_seconds=1.0, poll_interval_seconds=0.01)
    settings = Settings(pipeline=pipeline)
    await ingest_one_run(store, spec, max_attempts=3)
    worker = Worker(settings, Registry([spec]), store, Runner(store, Registry([spec]), pipeline))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 10
        while (run := await store.get_run("run_1")) and run.status != "succeeded":
            assert time.monotonic() < deadline, run
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await store.close()
    assert len(calls) == 1
    assert run is not None and run.attempts == 1


class CountingStore(SQLiteStore):
    claims = 0

    async def claim_runs(self, *args: Any, **kwargs: Any) -> Any:
        self.claims += 1
        return await super().claim_runs(*args, **kwargs)


async def test_runs_that_no_claim_can_take_do_not_make_every_poll_a_write(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'h.db'}")
    await store.open()
    await store.migrate()
    spec = HandlerSpec("t:handle", _never_called, "stripe", "*")
    # two runs of one key: the first is held by another (live) worker, so the second is
    # due but cannot be claimed
    for n in (1, 2):
        run = NewRun(f"run_{n}", spec.name, 3, concurrency_key="cus_1")
        event = NewEvent(f"evt_{n}", "stripe", f"p{n}", "t", time.time(), {}, b"{}", [run])
        await store.ingest(event, resume_failed=True)
    assert len(await store.claim_runs("other-worker", [spec.name], 1, 60)) == 1
    store.claims = 0
    pipeline = PipelineConfig(lease_seconds=60, poll_interval_seconds=0.01)
    registry = Registry([spec])
    _worker, stop, task = start_worker(store, registry, pipeline)
    await asyncio.sleep(1.0)  # 100 poll intervals
    stop.set()
    await task
    await store.close()
    assert 1 <= store.claims <= 12  # 0.01 s doubling to 1 s: ~7 tries, not ~100


async def _never_called(event: Event, ctx: Context) -> None:
    raise AssertionError("no run should start")


async def test_a_store_error_when_finishing_does_not_lose_a_succeeded_run(db_url: str) -> None:
    """The database blips just as the run ends (its last attempt): the outcome is written
    once the store answers again, while the claim is held — the run never turns failed."""
    base: Any = type(open_store(db_url))

    class FlakyFinish(base):  # type: ignore[misc]
        failures = 2

        async def finish_run(self, *args: Any, **kwargs: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise StoreError("OperationalError: server closed the connection unexpectedly")
            return await super().finish_run(*args, **kwargs)

    store = FlakyFinish(db_url)
    await store.open()
    await store.migrate()
    calls: list[int] = []

    async def handle(event: Event, ctx: Context) -> str:
        calls.append(1)
        return "done"

    spec = HandlerSpec("t:handle", handle, "stripe", "*")
    pipeline = PipelineConfig(lease_seconds=1.0, poll_interval_seconds=0.01)
    registry = Registry([spec])
    await ingest_one_run(store, spec, max_attempts=1)
    _worker, stop, task = start_worker(store, registry, pipeline)
    try:
        deadline = time.monotonic() + 15
        while (run := await store.get_run("run_1")) and run.status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, run
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await store.close()
    assert run is not None and (run.status, run.attempts) == ("succeeded", 1), run
    assert calls == [1]


async def test_a_store_error_when_recording_a_step_does_not_repeat_it(db_url: str) -> None:
    """The step ran (its side effect happened), then the store blipped: the record is
    retried while the claim is held, so the step is neither lost nor run again."""
    base: Any = type(open_store(db_url))

    class FlakyRecord(base):  # type: ignore[misc]
        failures = 2

        async def record_step(self, *args: Any, **kwargs: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise StoreError("OperationalError: server closed the connection unexpectedly")
            return await super().record_step(*args, **kwargs)

    store = FlakyRecord(db_url)
    await store.open()
    await store.migrate()
    calls: list[int] = []

    async def charge() -> str:
        calls.append(1)
        return "ch_1"

    async def handle(event: Event, ctx: Context) -> str:
        result: str = await ctx.step("charge", charge)
        return result

    spec = HandlerSpec("t:handle", handle, "stripe", "*")
    pipeline = PipelineConfig(lease_seconds=5.0, poll_interval_seconds=0.01)
    registry = Registry([spec])
    await ingest_one_run(store, spec, max_attempts=3)
    _worker, stop, task = start_worker(store, registry, pipeline)
    try:
        deadline = time.monotonic() + 15
        while (run := await store.get_run("run_1")) and run.status != "succeeded":
            assert time.monotonic() < deadline, run
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await store.close()
    assert calls == [1]
    assert run is not None and run.attempts == 1
    assert [a.outcome for a in run.steps[0].attempts] == ["succeeded"]


async def test_a_worker_that_cannot_renew_its_lease_gives_the_run_up_on_its_own(
    db_url: str,
) -> None:
    """A partition between one worker and the store: its heartbeats fail, the rest of the
    store is fine. It stops the run before its lease can expire (the next step never
    starts there); another worker reclaims it after the lease and finishes it."""
    base: Any = type(open_store(db_url))

    class Partitioned(base):  # type: ignore[misc]
        async def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
            raise StoreError("OperationalError: connection timed out")

    calls: list[str] = []
    a_stopped = asyncio.Event()

    async def a() -> str:
        calls.append("a")
        try:
            await asyncio.sleep(0 if len(calls) > 1 else 3.0)  # longer than the lease
        except asyncio.CancelledError:
            a_stopped.set()
            raise
        return "a"

    async def b() -> str:
        calls.append("b")
        return "b"

    async def handle(event: Event, ctx: Context) -> None:
        await ctx.step("a", a)
        await ctx.step("b", b)

    spec = HandlerSpec("t:handle", handle, "stripe", "*")
    registry = Registry([spec])
    pipeline = PipelineConfig(lease_seconds=1.0, poll_interval_seconds=0.01)
    settings = Settings(pipeline=pipeline)
    cut_off, healthy = Partitioned(db_url), base(db_url)
    for store in (cut_off, healthy):
        await store.open()
        await store.migrate()
    await healthy.ingest(
        NewEvent("evt_1", "stripe", "p1", "t", time.time(), {}, b"{}",
                 [NewRun("run_1", spec.name, 3)]),
        resume_failed=True,
    )  # fmt: skip
    stop = asyncio.Event()
    first = Worker(settings, registry, cut_off, Runner(cut_off, registry, pipeline))
    task = asyncio.create_task(first.run(stop))
    try:
        await asyncio.wait_for(a_stopped.wait(), 10)  # given up: lease - margin passed
        assert calls == ["a"]
        stop.set()
        await task
        second = Worker(settings, registry, healthy, Runner(healthy, registry, pipeline))
        stop = asyncio.Event()
        task = asyncio.create_task(second.run(stop))
        deadline = time.monotonic() + 15
        while (run := await healthy.get_run("run_1")) and run.status != "succeeded":
            assert time.monotonic() < deadline, run
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        for store in (cut_off, healthy):
            await store.close()
    assert calls == ["a", "a", "b"]  # a was in flight (at least once); b ran once
    assert run is not None and run.attempts == 2


class SlowToAnswerFinish(SQLiteStore):
    """``finish_run`` commits, then answers only after a heartbeat has gone by: the claim
    is no longer held by the time the heartbeat asks."""

    async def finish_run(self, *args: Any, **kwargs: Any) -> Any:
        kept = await super().finish_run(*args, **kwargs)
        await asyncio.sleep(1.5)  # a heartbeat interval (lease 4 s / 4) and a half
        return kept


async def test_a_run_that_finished_is_not_taken_for_a_lost_lease(
    tmp_path: Path, caplog: Any
) -> None:
    store = SlowToAnswerFinish(f"sqlite:///{tmp_path / 'h.db'}")
    await store.open()
    await store.migrate()

    async def handle(event: Event, ctx: Context) -> str:
        return "done"

    spec = HandlerSpec("t:handle", handle, "stripe", "*")
    pipeline = PipelineConfig(lease_seconds=4.0, poll_interval_seconds=0.01)
    registry = Registry([spec])
    await ingest_one_run(store, spec, max_attempts=3)
    worker, stop, task = start_worker(store, registry, pipeline)
    try:
        deadline = time.monotonic() + 10
        while worker.stats.runs.get("succeeded", 0) < 1:  # counted once _finish returned
            assert time.monotonic() < deadline, "the run's ending was never counted"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await store.close()
    assert not [r for r in caplog.records if "lease lost" in r.getMessage()]
    run = await _reopened_run(tmp_path)
    assert (run.status, run.attempts) == ("succeeded", 1)


async def _reopened_run(tmp_path: Path) -> Any:
    store = open_store(f"sqlite:///{tmp_path / 'h.db'}")
    await store.open()
    try:
        return await store.get_run("run_1")
    finally:
        await store.close()
