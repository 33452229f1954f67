"""Handlers for ``bench/jobs_enqueue.py`` (loaded with ``[pipeline] handlers``).

``bench-report`` is a job with a pydantic payload model, so the gateway validates every
request; ``on_any_stripe`` matches every Stripe event, for the "webhook with a run" target
(the same store work as a job: the event and one run). No worker runs in that bench.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from hookline import Context, Event, handler


class BenchPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    type: str
    created: int


@handler(job="bench-report", payload=BenchPayload)
async def bench_report(event: Event, ctx: Context) -> Any:
    return None


@handler("stripe", "*")
async def on_any_stripe(event: Event, ctx: Context) -> Any:
    return None
