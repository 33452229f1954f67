"""Context and Runner against a real SQLite store in a temp file (no server)."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hookline.config import PipelineConfig
from hookline.context import Context, Lease, RunScope, Suspend
from hookline.errors import NonDeterminismError, NonRetryableError, PipelineError
from hookline.pipeline import Event, HandlerFn, HandlerSpec, Registry
from hookline.runner import Runner
from hookline.step_threads import StepThreads
from hookline.store.base import ClaimedRun, NewEvent, NewRun, RunOutcome
from hookline.store.sqlite import SQLiteStore

HANDLER = "tests:handler"
_claims: dict[tuple[int, str], ClaimedRun] = {}  # (store, event id) → its claim, for context_for


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(f"sqlite:///{tmp_path / 'h.db'}")
    await s.open()
    await s.migrate()
    yield s
    await s.close()


async def claimed_run(store: SQLiteStore, event_id: str = "evt_1") -> ClaimedRun:
    await store.ingest(
        NewEvent(
            id=event_id,
            source="stripe",
            provider_event_id=f"p_{event_id}",
            type="t",
            received_at=time.time(),
            headers={},
            body=b'{"n": 1}',
            runs=[NewRun(id=f"run_{event_id}", handler=HANDLER, max_attempts=3)],
        ),
        resume_failed=True,
    )
    (claimed,) = await store.claim_runs("w1", [HANDLER], 1, 30)
    _claims[id(store), event_id] = claimed
    return claimed


def lease_of(claimed: ClaimedRun) -> Lease:
    return Lease(claimed.claim("w1"), deadline=time.monotonic() + 30)


async def run_once(
    store: SQLiteStore, handle: HandlerFn, event_id: str = "evt_1"
) -> RunOutcome | None:
    """One attempt of ``handle`` through the runner, on the run ``claimed_run`` makes."""
    spec = HandlerSpec(HANDLER, handle, "stripe", "*")
    claimed = await claimed_run(store, event_id)
    return await Runner(store, Registry([spec]), PipelineConfig()).execute(
        claimed, lease_of(claimed)
    )


async def context_for(
    store: SQLiteStore, event_id: str = "evt_1", threads: StepThreads | None = None
) -> Context:
    steps = await store.load_steps(event_id, HANDLER, 0, attempts=True)
    memo = {s.name: s for s in steps}
    lease = lease_of(_claims[id(store), event_id])
    scope = RunScope(f"run_{event_id}", event_id, HANDLER, 0, 1, memo=memo, lease=lease)
    return Context(scope, store, threads=threads)


@pytest.fixture(params=["default executor", "step threads"])
def threads(request: pytest.FixtureRequest) -> Iterator[StepThreads | None]:
    """Where sync steps run: the loop's default executor, or a worker's StepThreads."""
    if request.param == "default executor":
        yield None
        return
    pool = StepThreads(4, name="test-step")
    yield pool
    pool.close()


async def test_a_succeeded_step_is_not_called_again(store: SQLiteStore) -> None:
    await claimed_run(store)
    calls: list[str] = []

    def effect(x: int) -> dict[str, Any]:
        calls.append("effect")
        return {"x": x, "tuple": (1, 2)}

    first = await (await context_for(store)).step("s", effect, 5)
    again = await (await context_for(store)).step("s", effect, 99)
    assert calls == ["effect"]
    assert first == again == {"x": 5, "tuple": [1, 2]}  # the JSON round trip, both times


async def test_a_step_function_may_take_keywords_named_like_steps_own(
    store: SQLiteStore,
) -> None:
    await claimed_run(store)

    async def create_customer(*, name: str, fn: str) -> dict[str, str]:
        return {"name": name, "fn": fn}

    ctx = await context_for(store)
    assert await ctx.step("create", create_customer, name="Ann", fn="x") == {
        "name": "Ann",
        "fn": "x",
    }


async def test_a_failed_step_is_recorded_then_retried(store: SQLiteStore) -> None:
    await claimed_run(store)
    outcomes = iter([RuntimeError("first"), "ok"])

    async def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(RuntimeError):
        await (await context_for(store)).step("s", flaky)
    assert await (await context_for(store)).step("s", flaky) == "ok"
    (step,) = await store.load_steps("evt_1", HANDLER, 0, attempts=True)
    assert [a.outcome for a in step.attempts] == ["failed", "succeeded"]
    assert [a.number for a in step.attempts] == [1, 2]
    assert "RuntimeError: first" in (step.attempts[0].error or "")
    assert "Traceback" in (step.attempts[0].traceback or "")


async def test_another_name_at_a_recorded_position_is_nondeterminism(
    store: SQLiteStore,
) -> None:
    await claimed_run(store)
    await (await context_for(store)).step("charge-card", lambda: 1)
    ctx = await context_for(store)
    with pytest.raises(NonDeterminismError, match="charge-card"):
        await ctx.step("refund-card", lambda: 2)


async def test_step_names_must_be_unique_in_a_run(store: SQLiteStore) -> None:
    await claimed_run(store)
    ctx = await context_for(store)
    await ctx.step("a", lambda: 1)
    with pytest.raises(PipelineError, match="used twice"):
        await ctx.step("a", lambda: 2)


async def test_step_timeout_fails_the_attempt(store: SQLiteStore) -> None:
    await claimed_run(store)

    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await (await context_for(store)).step("slow", slow, step_timeout=0.05)
    (step,) = await store.load_steps("evt_1", HANDLER, 0, attempts=True)
    assert step.status == "failed" and "TimeoutError" in (step.attempts[0].error or "")


async def test_gather_returns_results_in_argument_order_and_waits_for_all(
    store: SQLiteStore,
) -> None:
    await claimed_run(store)
    ctx = await context_for(store)
    finished: list[str] = []

    async def job(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        finished.append(name)
        return name

    results = await ctx.gather(ctx.step("a", job, "a", 0.03), ctx.step("b", job, "b", 0.0))
    assert results == ["a", "b"] and finished == ["b", "a"]

    async def boom() -> None:
        raise ValueError("boom")

    await claimed_run(store, "evt_2")
    ctx2 = await context_for(store, "evt_2")
    with pytest.raises(ValueError, match="boom"):
        await ctx2.gather(
            ctx2.step("a", job, "a", 0), ctx2.step("c", boom), ctx2.step("d", job, "d", 0.02)
        )
    assert finished[-1] == "d"  # the failure did not abandon the step still running


async def test_sleep_suspends_until_its_recorded_time(store: SQLiteStore) -> None:
    lease = lease_of(await claimed_run(store))
    now = [1000.0]
    scope = RunScope("run_evt_1", "evt_1", HANDLER, 0, 1, lease=lease)
    with pytest.raises(Suspend) as parked:
        await Context(scope, store, clock=lambda: now[0]).sleep("nap", 60)
    assert parked.value.until == 1060.0
    steps = await store.load_steps("evt_1", HANDLER, 0)
    memo = {s.name: s for s in steps}
    later = RunScope("run_evt_1", "evt_1", HANDLER, 0, 1, memo=memo, lease=lease)
    now[0] = 1030.0
    with pytest.raises(Suspend):  # woken early: still parked until the same time
        await Context(later, store, clock=lambda: now[0]).sleep("nap", 60)
    now[0] = 1060.5
    await Context(later, store, clock=lambda: now[0]).sleep("nap", 60)


def test_idempotency_keys_are_stable_and_change_with_a_fresh_generation() -> None:
    def key(generation: int, step: str, event: str = "evt_1") -> str:
        scope = RunScope("run_x", event, HANDLER, generation, 1)
        return Context(scope, None).idempotency_key(step)  # type: ignore[arg-type]

    assert key(0, "email") == key(0, "email")
    assert len({key(0, "email"), key(0, "sms"), key(1, "email"), key(0, "email", "evt_2")}) == 4


async def test_runner_maps_endings_to_outcomes(store: SQLiteStore) -> None:
    async def ok(event: Event, ctx: Context) -> dict[str, Any]:
        return {"n": event.data["n"]}

    async def flaky(event: Event, ctx: Context) -> None:
        raise RuntimeError("try again")

    async def fatal(event: Event, ctx: Context) -> None:
        raise NonRetryableError("never")

    async def unserializable(event: Event, ctx: Context) -> object:
        return object()

    config = PipelineConfig(backoff_base_seconds=10, backoff_jitter="none")
    for fn, status in [
        (ok, "succeeded"),
        (flaky, "retrying"),
        (fatal, "failed"),
        (unserializable, "failed"),
    ]:
        spec = HandlerSpec(HANDLER, fn, "stripe", "*")
        runner = Runner(store, Registry([spec]), config, clock=lambda: 500.0)
        claimed = await claimed_run(store, f"evt_{fn.__name__}")
        outcome = await runner.execute(claimed, lease_of(claimed))
        assert outcome is not None and outcome.status == status, fn.__name__
        if status == "retrying":
            assert outcome.delay == 10.0 and "try again" in (outcome.error or "")
    # claims take only loaded handlers; were one taken all the same, it is handed back
    missing = Runner(store, Registry([]), config)
    claimed = await claimed_run(store, "evt_missing")
    outcome = await missing.execute(claimed, lease_of(claimed))
    assert outcome is not None and (outcome.status, outcome.refund_attempt) == ("queued", True)


async def test_a_run_reclaimed_past_its_attempts_fails_without_counting_one_more(
    store: SQLiteStore,
) -> None:
    calls: list[str] = []

    async def handle(event: Event, ctx: Context) -> None:
        calls.append("called")

    await store.ingest(
        NewEvent("evt_c", "stripe", "p_c", "t", time.time(), {}, b"{}",
                 [NewRun("run_c", HANDLER, max_attempts=1)]),
        resume_failed=True,
    )  # fmt: skip
    await store.claim_runs("w1", [HANDLER], 1, 0.01)  # attempt 1: its worker dies
    await asyncio.sleep(0.05)
    (again,) = await store.claim_runs("w2", [HANDLER], 1, 30)
    assert again.run.attempts == 2
    registry = Registry([HandlerSpec(HANDLER, handle, "stripe", "*")])
    outcome = await Runner(store, registry, PipelineConfig()).execute(again, lease_of(again))
    assert calls == [] and outcome is not None and outcome.status == "failed"
    assert "the last of 1 attempt(s) ended without an outcome" in (outcome.error or "")
    assert await store.finish_run(again.claim("w2"), outcome)
    run = await store.get_run("run_c")
    assert run is not None and (run.status, run.attempts) == ("failed", 1)


async def test_a_cancelled_run_waits_for_its_sync_step_and_records_it(
    store: SQLiteStore, threads: StepThreads | None
) -> None:
    await claimed_run(store)
    ctx = await context_for(store, threads=threads)
    started, finished = threading.Event(), threading.Event()

    def charge_card() -> str:
        started.set()
        time.sleep(0.3)  # a thread cannot be interrupted
        finished.set()
        return "ch_1"

    task = asyncio.create_task(ctx.step("charge", charge_card))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()  # the run ended only after its side effect did
    (step,) = await store.load_steps("evt_1", HANDLER, 0)
    assert step.status == "succeeded" and step.result == "ch_1"  # a resume will not repeat it


async def test_a_cancelled_gather_leaves_no_step_running(store: SQLiteStore) -> None:
    await claimed_run(store)
    ctx = await context_for(store)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(ctx.gather(ctx.step("a", forever), ctx.step("b", forever)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert left == []  # nothing of the run keeps running (or recording) after it let go


async def test_a_cancelled_gather_waits_for_its_sync_step_and_records_it(
    store: SQLiteStore, threads: StepThreads | None
) -> None:
    await claimed_run(store)
    ctx = await context_for(store, threads=threads)
    started, finished = threading.Event(), threading.Event()

    def charge_card() -> str:
        started.set()
        time.sleep(0.3)  # a thread cannot be interrupted
        finished.set()
        return "ch_1"

    async def forever() -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(
        ctx.gather(ctx.step("charge", charge_card), ctx.step("wait", forever))
    )
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()  # the run let go only after the thread's side effect
    steps = {s.name: s for s in await store.load_steps("evt_1", HANDLER, 0)}
    assert steps["charge"].status == "succeeded" and steps["charge"].result == "ch_1"
    assert "wait" not in steps or steps["wait"].status != "succeeded"


async def test_a_sync_step_that_outlives_its_timeout_keeps_its_result(store: SQLiteStore) -> None:
    await claimed_run(store)
    calls: list[int] = []

    def charge_card() -> str:
        calls.append(1)
        time.sleep(0.2)  # longer than the timeout: the thread still finishes
        return "ch_1"

    ctx = await context_for(store)
    assert await ctx.step("charge", charge_card, step_timeout=0.05) == "ch_1"
    assert await (await context_for(store)).step("charge", charge_card) == "ch_1"
    assert calls == [1]  # its side effect happened once, and is never repeated
    (step,) = await store.load_steps("evt_1", HANDLER, 0, attempts=True)
    assert step.status == "succeeded"
    assert [a.outcome for a in step.attempts] == ["succeeded"]


async def test_a_step_result_that_is_not_json_fails_the_run_at_once(store: SQLiteStore) -> None:
    calls: list[int] = []

    def make_order() -> object:
        calls.append(1)
        return {"order": object()}

    async def handle(event: Event, ctx: Context) -> None:
        await ctx.step("make-order", make_order)

    outcome = await run_once(store, handle)
    assert outcome is not None and outcome.status == "failed"  # a retry would repeat it
    assert "make-order" in (outcome.error or "") and "JSON" in (outcome.error or "")
    assert calls == [1]


async def test_a_later_attempt_reads_the_memo_even_if_its_claim_saw_none(
    store: SQLiteStore,
) -> None:
    # A claim that took a run from a lapsed holder may have begun just before that holder's
    # last step record committed (PostgreSQL computes has_memo in the claim's statement):
    # its has_memo=False must not make the runner call a succeeded step again.
    from dataclasses import replace

    calls: list[str] = []

    def charge() -> str:
        calls.append("charge")
        return "ch_1"

    async def handle(event: Event, ctx: Context) -> str:
        result: str = await ctx.step("charge", charge)
        return result

    runner = Runner(
        store, Registry([HandlerSpec(HANDLER, handle, "stripe", "*")]), PipelineConfig()
    )
    claimed = await claimed_run(store)
    assert await (await context_for(store)).step("charge", charge) == "ch_1"  # recorded
    later = replace(claimed, run=replace(claimed.run, attempts=2), has_memo=False)
    outcome = await runner.execute(later, lease_of(claimed))
    assert outcome is not None and outcome.status == "succeeded"
    assert calls == ["charge"]  # the recorded step was not called a second time


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


async def test_a_sync_step_runs_in_a_step_thread_with_the_callers_context_and_errors(
    store: SQLiteStore,
) -> None:
    await claimed_run(store)
    pool = StepThreads(2, name="test-step")
    try:
        ctx = await context_for(store, threads=pool)
        REQUEST_ID.set("req-7")

        def where() -> list[str]:
            return [threading.current_thread().name, REQUEST_ID.get()]

        def declined() -> None:
            raise ValueError("card declined")

        assert await ctx.step("where", where) == ["test-step_0", "req-7"]
        with pytest.raises(ValueError, match="card declined"):
            await ctx.step("charge", declined)
    finally:
        pool.close()
    steps = {s.name: s for s in await store.load_steps("evt_1", HANDLER, 0, attempts=True)}
    assert steps["where"].status == "succeeded"
    assert steps["charge"].status == "failed"
    assert "card declined" in (steps["charge"].attempts[0].error or "")


async def test_the_handlers_logger_carries_the_run_and_is_made_once(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    await claimed_run(store)
    ctx = await context_for(store)
    assert ctx.logger is ctx.logger
    with caplog.at_level("INFO", logger="hookline.handler"):
        ctx.logger.info("charging")
    (record,) = [r for r in caplog.records if r.name == "hookline.handler"]
    assert (record.run_id, record.handler, record.event) == ("run_evt_1", HANDLER, "evt_1")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "result", [float("nan"), {"rate": float("inf")}, [float("-inf")]], ids=["nan", "inf", "-inf"]
)
async def test_a_nan_or_infinite_step_result_is_no_json(store: SQLiteStore, result: Any) -> None:
    """json.dumps writes NaN and Infinity, which no JSON reader takes: the admin API showed
    null where the handler got nan back. They fail the run as any result that is no JSON."""

    async def handle(event: Event, ctx: Context) -> None:
        await ctx.step("rate", lambda: result)

    outcome = await run_once(store, handle)
    assert outcome is not None and outcome.status == "failed"
    assert "'rate' returned a result that is not JSON" in (outcome.error or "")


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), 1e12, True, "60"])
async def test_a_sleep_no_date_can_hold_fails_the_run(store: SQLiteStore, seconds: Any) -> None:
    """An infinite, NaN or centuries-long sleep parked a run forever (or never) and made
    every view of its event fail on the wake time; it is a misuse now."""

    async def handle(event: Event, ctx: Context) -> None:
        await ctx.sleep("nap", seconds)

    outcome = await run_once(store, handle)
    assert outcome is not None and outcome.status == "failed"
    assert "seconds must be a number up to" in (outcome.error or "")
    assert await store.load_steps("evt_1", HANDLER, 0) == []  # nothing recorded


async def test_a_sleep_until_a_time_already_past_does_not_wait(store: SQLiteStore) -> None:
    async def handle(event: Event, ctx: Context) -> str:
        await ctx.sleep("until-deadline", -30)  # deadline - now, the deadline already past
        return "on time"

    outcome = await run_once(store, handle)
    assert outcome is not None and (outcome.status, outcome.result_json) == (
        "succeeded",
        '"on time"',
    )


async def test_a_plain_def_handler_runs_once_and_fails_at_once(store: SQLiteStore) -> None:
    """A plain def ran whole, side effects included, on every attempt, then failed awaiting
    its result; now its first attempt fails the run. (A sync wrapper that returns the
    coroutine of an async function is a handler like any other.)"""
    calls: list[int] = []

    def plain(event: Event, ctx: Context) -> str:
        calls.append(1)
        return "done"

    outcome = await run_once(store, plain)  # type: ignore[arg-type]
    assert outcome is not None and outcome.status == "failed" and calls == [1]
    assert "returned str, not an awaitable: define it with async def" in (outcome.error or "")

    async def real(event: Event, ctx: Context) -> str:
        return "ok"

    wrapped = await run_once(store, lambda event, ctx: real(event, ctx), "evt_2")
    assert wrapped is not None and wrapped.status == "succeeded"


async def awaits_a_cancelled_task() -> None:
    task = asyncio.ensure_future(asyncio.sleep(10))
    task.cancel()
    await task


async def test_a_steps_own_cancellederror_after_a_failed_taskgroup_is_its_failure(
    store: SQLiteStore,
) -> None:
    """A TaskGroup whose child failed leaves Task.cancelling() at 1 for good (Python 3.11):
    a CancelledError afterwards is still the step's own, recorded and retried, not read
    as the worker cancelling the run (which would hand it back at once, forever)."""

    async def boom() -> None:
        raise ValueError("child failed")

    async def handle(event: Event, ctx: Context) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(boom())
        except* ValueError:
            pass
        await ctx.step("c", awaits_a_cancelled_task)

    outcome = await run_once(store, handle)
    assert outcome is not None and outcome.status == "retrying", outcome
    (step,) = await store.load_steps("evt_1", HANDLER, 0, attempts=True)
    assert [a.outcome for a in step.attempts] == ["failed"]


async def test_a_step_that_exits_inside_a_task_of_its_own_ends_no_event_loop(
    store: SQLiteStore,
) -> None:
    """asyncio re-raises SystemExit out of the event loop from any task: a step run in a
    TaskGroup's task that calls sys.exit() must fail as a step, not end the worker."""

    def exits() -> None:
        sys.exit(3)

    async def handle(event: Event, ctx: Context) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(ctx.step("a", exits))

    outcome = await run_once(store, handle)
    assert outcome is not None and outcome.status == "retrying", outcome
    assert "StepExited: step 'a' raised SystemExit: 3" in (outcome.error or "")
    (step,) = await store.load_steps("evt_1", HANDLER, 0, attempts=True)
    assert (step.attempts[0].outcome, step.attempts[0].error) == ("failed", "SystemExit: 3")


async def test_gather_raises_a_result_that_is_no_json_before_an_ordinary_failure(
    store: SQLiteStore,
) -> None:
    """A step whose result is no JSON has had its side effect: the run fails at once, even
    when an earlier argument failed in a way that would otherwise retry (and call it again)."""
    charged: list[int] = []

    def flaky() -> None:
        raise RuntimeError("transient")

    def charge() -> object:
        charged.append(1)
        return object()

    async def handle(event: Event, ctx: Context) -> None:
        await ctx.gather(ctx.step("a", flaky), ctx.step("b", charge))

    outcome = await run_once(store, handle)
    assert outcome is not None and outcome.status == "failed", outcome
    assert "'b' returned a result that is not JSON" in (outcome.error or "") and charged == [1]
