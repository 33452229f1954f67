from __future__ import annotations

import random

import pytest

from hookline.retry import backoff_delay


def test_no_jitter_doubles_until_the_cap() -> None:
    delays = [backoff_delay(n, base=1.0, cap=10.0, jitter="none") for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.mark.parametrize("attempt", [1, 2, 5, 12])
def test_full_jitter_stays_within_the_exponential_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(60.0, 0.5 * 2 ** (attempt - 1))
    delays = [backoff_delay(attempt, 0.5, 60.0, "full", rand=rng.uniform) for _ in range(500)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 4  # actually spread, not constant


def test_equal_jitter_keeps_at_least_half_the_ceiling() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(4, 1.0, 100.0, "equal", rand=rng.uniform) for _ in range(500)]
    assert all(4.0 <= d <= 8.0 for d in delays)
