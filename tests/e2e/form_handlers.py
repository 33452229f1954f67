"""Handlers that return what they were given, so a test can read ``Event.data`` back from
the run's result."""

from __future__ import annotations

from typing import Any

from hookline import Context, Event, handler


@handler("slack", "*")
async def slack_data(event: Event, ctx: Context) -> Any:
    return {"type": event.type, "data": event.data}


@handler("github", "*")
async def github_data(event: Event, ctx: Context) -> Any:
    return {"type": event.type, "data": event.data}
