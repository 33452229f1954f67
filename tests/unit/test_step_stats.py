"""``hookline.step_stats``: a worker's step-duration counters."""

from __future__ import annotations

import pytest

from hookline.step_stats import STEP_BUCKETS, observe_step
from hookline.store.base import WorkerStats


@pytest.mark.parametrize(
    "seconds",
    [0.0, 0.004, 0.005, 0.0050001, 0.01, 0.3, 1.0, 60.0, 300.0, 300.5, 1e9],
)
def test_a_step_is_counted_in_the_first_bucket_it_fits_and_in_the_sum(seconds: float) -> None:
    stats = WorkerStats()
    observe_step(stats, "succeeded", seconds)
    observe_step(stats, "succeeded", seconds)
    values = stats.steps["succeeded"]
    fits = [i for i, le in enumerate(STEP_BUCKETS) if seconds <= le]
    index = fits[0] if fits else len(STEP_BUCKETS)  # the last count is +Inf
    assert values[index] == 2 and sum(values[:-1]) == 2
    assert values[-1] == pytest.approx(2 * seconds)
    assert len(values) == len(STEP_BUCKETS) + 2 and "failed" not in stats.steps
