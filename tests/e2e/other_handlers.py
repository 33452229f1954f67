"""A second handler module: what an older (or newer) release of the app loads.

A worker configured with this module alone has not loaded ``pipeline_handlers``.
"""

from __future__ import annotations

from hookline import Context, Event, handler
from tests.e2e.pipeline_handlers import effect


@handler("stripe", "test.other")
async def other(event: Event, ctx: Context) -> str:
    result: str = await ctx.step("other", effect, "other", event.provider_event_id)
    return result
