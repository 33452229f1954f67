"""Handler modules for the pipeline benches (loaded with ``[pipeline] handlers``).

* ``bench.trivial`` → ``trivial``: two memoized steps that do next to nothing, the first
  a coroutine, the second a plain (sync) function, which hookline runs in a thread: the
  bench measures the pipeline's own cost per run (claim, memo writes, finish).
* ``bench.cpu`` → ``cpu_heavy``: two steps, each burning ``CPU_STEP_SECONDS`` of CPU
  in a tight Python loop (not a sleep), to keep the worker processes saturated.

Events of any other type (the ack-isolation probes use ``bench.ping``) match no
handler and are stored ``unhandled``.
"""

from __future__ import annotations

import time
from typing import Any

from hookline import Context, Event, handler

CPU_STEP_SECONDS = 0.2


async def _first(event_id: str) -> dict[str, Any]:
    return {"seen": event_id}


def _second(first: dict[str, Any]) -> int:
    return len(first["seen"])


@handler("stripe", "bench.trivial", max_attempts=3)
async def trivial(event: Event, ctx: Context) -> dict[str, Any]:
    first = await ctx.step("first", _first, event.provider_event_id)
    second = await ctx.step("second", _second, first)
    return {"n": second}


def burn(seconds: float) -> int:
    """Spin the CPU for ``seconds`` of this thread's CPU time."""
    deadline = time.thread_time() + seconds
    n = 0
    while time.thread_time() < deadline:
        for _ in range(1000):
            n += 1
    return n


@handler("stripe", "bench.cpu", max_attempts=3)
async def cpu_heavy(event: Event, ctx: Context) -> dict[str, Any]:
    a = await ctx.step("burn-1", burn, CPU_STEP_SECONDS)
    b = await ctx.step("burn-2", burn, CPU_STEP_SECONDS)
    return {"n": a + b}
