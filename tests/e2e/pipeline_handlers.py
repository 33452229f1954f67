"""Handlers for the pipeline end-to-end tests.

Side effects are lines appended (O_APPEND, atomic for small writes) to files in
``$HOOKLINE_TEST_DIR``, so a test can count exactly how often each step body ran,
across worker processes and restarts.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hookline import Context, Event, NonRetryableError, handler

DIR = Path(os.environ.get("HOOKLINE_TEST_DIR", "."))


def append(line: str, name: str = "effects.log") -> None:
    fd = os.open(DIR / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def count(line: str, name: str = "effects.log") -> int:
    path = DIR / name
    return path.read_text().splitlines().count(line) if path.exists() else 0


def effect(tag: str, event_id: str) -> str:
    append(f"{tag} {event_id}")
    return tag


def flaky_step(event_id: str) -> int:
    calls = count(f"flaky {event_id}") + 1
    append(f"flaky {event_id}")
    if calls < 3:
        raise RuntimeError(f"flaky failure number {calls}")
    return calls


async def blocking_step(event_id: str) -> str:
    append(f"blocking-start {event_id}")
    while not (DIR / f"release-{event_id}").exists():
        await asyncio.sleep(0.02)
    append(f"blocking-end {event_id}")
    return "released"


def fixable_step(event_id: str) -> str:
    append(f"fixable {event_id}")
    if not (DIR / "fixed").exists():
        raise NonRetryableError("downstream rejected the order (not fixed yet)")
    return "ok"


async def ordered_step(key: str, number: int) -> None:
    append(f"start {key} {number}", "order.log")
    await asyncio.sleep(0.002)
    append(f"end {key} {number}", "order.log")


async def slow_step(event_id: str) -> str:
    await asyncio.sleep(0.05)
    append(f"slow {event_id}")
    return "slow"


def where_am_i() -> list[Any]:
    """The thread a sync step runs in, and whether it is one of the worker's step threads."""
    frame = sys._getframe()
    frames = []
    while frame is not None:
        frames.append((frame.f_code.co_name, frame.f_globals.get("__name__")))
        frame = frame.f_back
    return [threading.current_thread().name, ("_main", "hookline.step_threads") in frames]


@handler("stripe", "test.thread")
async def in_a_thread(event: Event, ctx: Context) -> list[Any]:
    where: list[Any] = await ctx.step("where", where_am_i)
    return where


@handler("stripe", "test.two_steps")
async def two_steps(event: Event, ctx: Context) -> dict[str, Any]:
    one = await ctx.step("one", effect, "one", event.provider_event_id)
    two = await ctx.step("two", effect, "two", event.provider_event_id)
    return {"one": one, "two": two}


@handler("stripe", "test.flaky", max_attempts=5)
async def flaky(event: Event, ctx: Context) -> int:
    await ctx.step("first", effect, "first", event.provider_event_id)
    result: int = await ctx.step("flaky", flaky_step, event.provider_event_id)
    return result


@handler("stripe", "test.block")
async def block(event: Event, ctx: Context) -> str:
    await ctx.step("before", effect, "before", event.provider_event_id)
    await ctx.step("blocking", blocking_step, event.provider_event_id)
    await ctx.step("after", effect, "after", event.provider_event_id)
    return "done"


@handler("stripe", "test.fixable", max_attempts=2)
async def fixable(event: Event, ctx: Context) -> str:
    await ctx.step("prepare", effect, "prepare", event.provider_event_id)
    result: str = await ctx.step("fixable", fixable_step, event.provider_event_id)
    return result


@handler("stripe", "test.ordered", concurrency_key=lambda e: e.data["data"]["key"])
async def ordered(event: Event, ctx: Context) -> None:
    data = event.data["data"]
    await ctx.step("record", ordered_step, data["key"], data["number"])


@handler(job="ordered-job", concurrency_key=lambda e: e.data["key"])
async def ordered_job(event: Event, ctx: Context) -> None:
    await ctx.step("record", ordered_step, event.data["key"], event.data["number"])


@handler("stripe", "test.slow")
async def slow(event: Event, ctx: Context) -> None:
    await ctx.step("a", slow_step, event.provider_event_id)
    await ctx.step("b", effect, "b", event.provider_event_id)


@handler("stripe", "test.sleep_gather")
async def sleep_gather(event: Event, ctx: Context) -> list[Any]:
    eid = event.provider_event_id
    await ctx.step("before-sleep", effect, "before-sleep", eid)
    await ctx.sleep("nap", 0.3)
    results = await ctx.gather(
        ctx.step("g1", effect, "g1", eid),
        ctx.step("g2", effect, "g2", eid),
        ctx.step("g3", effect, "g3", eid),
    )
    append(f"woke {eid} {time.time()}")
    return results


@handler("stripe", "test.notify")
async def notify(event: Event, ctx: Context) -> None:
    await ctx.step("notify-app", ctx.notify, {"event": event.provider_event_id})


@handler("stripe", "test.nondeterministic")
async def nondeterministic(event: Event, ctx: Context) -> None:
    # The step name depends on the attempt: a replay finds another name at position 0.
    await ctx.step(f"step-{ctx.attempt}", effect, "nd", event.provider_event_id)
    raise RuntimeError("force a retry")


@handler("stripe", "test.stacked_a")  # decorators stack: one function, two registrations
@handler("stripe", "test.stacked_b")
async def stacked(event: Event, ctx: Context) -> str:
    await ctx.step("record", effect, f"stacked {event.type}", event.provider_event_id)
    return event.type


def slow_sync_step(event_id: str, seconds: float) -> str:
    """A sync step (it runs in a thread, which nothing can interrupt) longer than a lease."""
    append(f"a-start {event_id} {os.getpid()}")
    time.sleep(seconds)
    append(f"a-end {event_id} {os.getpid()}")
    return "a"


@handler("stripe", "test.fence")
async def fence(event: Event, ctx: Context) -> str:
    seconds = float(event.data["data"].get("seconds", 2.5))
    await ctx.step("a", slow_sync_step, event.provider_event_id, seconds)
    await ctx.step("b", effect, "b", event.provider_event_id)
    return "done"


async def awaits_a_cancelled_task(event_id: str) -> None:
    """Ordinary code that awaits a task something else cancelled: its CancelledError is the
    step's failure, not a cancellation of the run."""
    append(f"cancelled-step {event_id}")
    task = asyncio.ensure_future(asyncio.sleep(10))
    task.cancel()
    await task


def exits(event_id: str, code: int) -> None:
    """A library that calls sys.exit() (argparse on a bad argument does)."""
    append(f"exit-step {event_id}")
    sys.exit(code)


@handler("stripe", "test.own_cancel", max_attempts=2)
async def own_cancel(event: Event, ctx: Context) -> None:
    await ctx.step("cancelled", awaits_a_cancelled_task, event.provider_event_id)


@handler("stripe", "test.exits", max_attempts=2)
async def exiting(event: Event, ctx: Context) -> None:
    await ctx.step("exit", exits, event.provider_event_id, 3)


def declined(event_id: str) -> None:
    append(f"declined {event_id}")
    raise NonRetryableError("card declined: do not retry")


def broken(event_id: str) -> None:
    raise RuntimeError("transient")


@handler("stripe", "test.gather_nonretryable", max_attempts=3)
async def gather_nonretryable(event: Event, ctx: Context) -> None:
    eid = event.provider_event_id
    await ctx.gather(ctx.step("broken", broken, eid), ctx.step("declined", declined, eid))
