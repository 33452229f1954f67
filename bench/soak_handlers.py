"""Handlers of ``bench/soak.py`` (loaded with ``[pipeline] handlers``).

``soak.two_steps``: two memoized steps, each appending one line ``<step> <event id>`` to
``$HOOKLINE_SOAK_DIR/effects.log`` (O_APPEND: one atomic write per line, whichever worker
process runs it), so the soak can count how often each side effect happened.
"""

from __future__ import annotations

import os
from pathlib import Path

from hookline import Context, Event, handler

EFFECTS = Path(os.environ.get("HOOKLINE_SOAK_DIR", ".")) / "effects.log"


def _effect(step: str, event_id: str) -> str:
    fd = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{step} {event_id}\n".encode())
    finally:
        os.close(fd)
    return step


@handler("stripe", "soak.two_steps", max_attempts=8)
async def two_steps(event: Event, ctx: Context) -> dict[str, str]:
    one = await ctx.step("one", _effect, "one", event.provider_event_id)
    two = await ctx.step("two", _effect, "two", event.provider_event_id)
    return {"one": one, "two": two}
