"""A handler whose error message carries a configured secret (as a careless client
library's might), to check what an operator's log line shows of it."""

from __future__ import annotations

import os
import warnings

from hookline import Context, Event, handler


@handler("stripe", "test.leaky", max_attempts=2)
async def leaky(event: Event, ctx: Context) -> None:
    key = os.environ["HOOKLINE_TEST_LEAKED"]
    raise RuntimeError(f"upstream refused the call (api key {key})\nsecond line of detail")


def _die() -> None:
    os.kill(os.getpid(), 9)  # the worker process, as a segfault or the OOM killer would


@handler("stripe", "test.fatal_step", max_attempts=1)
async def fatal_step(event: Event, ctx: Context) -> None:
    await ctx.step("die", _die)


@handler("stripe", "test.warns")
async def warns(event: Event, ctx: Context) -> None:
    key = os.environ["HOOKLINE_TEST_LEAKED"]
    warnings.warn(f"deprecated client option (api key {key})", UserWarning, stacklevel=1)
