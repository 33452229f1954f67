"""Example handlers (the demo config loads these). Placeholder until the pipeline issue."""

from __future__ import annotations

from typing import Any

from app.pipeline import Context, Event, handler


@handler("stripe", "checkout.session.completed", max_attempts=5)
async def fulfil_order(event: Event, ctx: Context) -> dict[str, Any]:
    session = event.data["data"]["object"]
    return {"session": session.get("id")}
