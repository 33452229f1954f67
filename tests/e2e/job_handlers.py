"""Job handlers for the jobs gateway's end-to-end tests (``@handler(job=...)``).

Side effects are lines appended to files in ``$HOOKLINE_TEST_DIR`` (see
``pipeline_handlers``), so a test counts exactly how often each step body ran.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from hookline import Context, Event, NonRetryableError, handler
from tests.e2e.pipeline_handlers import DIR, append, effect


class ReportRequest(BaseModel):
    report_id: str = Field(min_length=1)
    pages: int = Field(1, ge=1, le=500)


def deliver(report_id: str) -> str:
    append(f"deliver {report_id}")
    if not (DIR / f"deliver-ok-{report_id}").exists():
        raise NonRetryableError(f"mailbox for {report_id} is full")
    return "delivered"


@handler(job="report", payload=ReportRequest, max_attempts=1)
async def report(event: Event, ctx: Context) -> dict[str, Any]:
    req = ReportRequest.model_validate(event.data)
    await ctx.step("render", effect, "render", req.report_id)
    await ctx.step("deliver", deliver, req.report_id)
    return {"report": req.report_id, "pages": req.pages}


@handler(job="echo")  # no payload model: any JSON value
async def echo(event: Event, ctx: Context) -> Any:
    await ctx.step("once", effect, "echo", event.id)
    return event.data


def call_api(token: str) -> None:
    raise PermissionError(f"the API refused token {token}: revoked")


@handler(job="leak", max_attempts=1)
async def leak(event: Event, ctx: Context) -> None:
    ctx.logger.warning(f"calling the API with {ctx.secrets['api_token']}")
    await ctx.step("call-api", call_api, ctx.secrets["api_token"])


def fetch_token(token: str) -> dict[str, str]:
    return {"token": token}


@handler(job="hand-back")
async def hand_back(event: Event, ctx: Context) -> dict[str, str]:
    """Results that hold a secret, as a careless handler's might."""
    fetched = await ctx.step("fetch", fetch_token, ctx.secrets["api_token"])
    return {"echoed": fetched["token"]}


@handler(job="wait")
async def wait(event: Event, ctx: Context) -> str:
    async def blocked() -> str:
        append(f"wait-start {event.id}")
        while not (DIR / f"release-{event.id}").exists():
            await asyncio.sleep(0.02)
        return "released"

    result: str = await ctx.step("blocked", blocked)
    return result
