"""Job handlers for the schedules' end-to-end tests.

Side effects are lines appended to files in ``$HOOKLINE_TEST_DIR`` (see
``pipeline_handlers``): one line per run of a step, so a test counts how often each
tick's job ran, and when.
"""

from __future__ import annotations

import asyncio
import os
import time

from hookline import Context, Event, handler
from tests.e2e.pipeline_handlers import append


def record(schedule: str, scheduled_for: str, job_id: str) -> None:
    append(f"{schedule} {scheduled_for} {job_id} {os.getpid()}", "ticks.log")


@handler(job="tick")
async def tick(event: Event, ctx: Context) -> None:
    """Every run leaves one line: which schedule, which tick, which job."""
    data = event.data
    await ctx.step("record", record, data.get("schedule", "-"), data["scheduledFor"], event.id)


async def work(scheduled_for: str, seconds: float) -> None:
    append(f"start {scheduled_for} {time.time()}", "slow.log")
    await asyncio.sleep(seconds)
    append(f"end {scheduled_for} {time.time()}", "slow.log")


@handler(job="slow")
async def slow(event: Event, ctx: Context) -> None:
    """Slower than its schedule's interval."""
    await ctx.step("work", work, event.data["scheduledFor"], float(event.data["seconds"]))
