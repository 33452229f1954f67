"""The handler of the chaos runs (``tests/support/chaos.py``).

Each step's side effect is a line appended (O_APPEND: atomic for a small write) to
``$HOOKLINE_CHAOS_DIR/effects.log``: ``<step> <event id> <pid>``, written as the step's
last act before it returns. So the lines count how often each step really ran, and in
which process — whatever hookline's own tables say.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from hookline import Context, Event, handler

DIR = Path(os.environ.get("HOOKLINE_CHAOS_DIR", "."))


def effect(step: str, event_id: str) -> None:
    fd = os.open(DIR / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{step} {event_id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


async def step_a(event_id: str) -> str:
    await asyncio.sleep(0.02)  # in flight long enough for kills to land inside steps
    effect("a", event_id)
    return "a"


def step_b(event_id: str) -> str:  # sync: runs in a thread, which nothing can interrupt
    time.sleep(0.01)
    effect("b", event_id)
    return "b"


@handler("stripe", "chaos.run", max_attempts=20)
async def chaos_run(event: Event, ctx: Context) -> list[str]:
    a = await ctx.step("a", step_a, event.provider_event_id)
    b = await ctx.step("b", step_b, event.provider_event_id)
    return [a, b]
