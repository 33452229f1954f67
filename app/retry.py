"""Backoff between run attempts: exponential, capped, with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

Jitter = Literal["full", "equal", "none"]


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    jitter: Jitter = "full",
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Delay before the attempt after ``attempt`` (1-based).

    ``full`` (the default, AWS's "full jitter") spreads retries of many runs over
    ``[0, min(cap, base * 2**(attempt-1))]`` so a burst of failures does not retry in
    lockstep; ``none`` gives the exact exponential curve (useful in tests).
    """
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    if jitter == "none":
        return ceiling
    if jitter == "equal":
        return ceiling / 2 + float(rand(0, ceiling / 2))
    return float(rand(0, ceiling))
