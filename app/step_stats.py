"""A worker's step-duration counters, without prometheus_client (workers serve no metrics:
they store these counters with each heartbeat, and ``hookline.metrics`` renders them)."""

from __future__ import annotations

from bisect import bisect_left

from hookline.store.base import WorkerStats

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def observe_step(stats: WorkerStats, outcome: str, seconds: float) -> None:
    """Count one step attempt in a worker's counters: one count per bucket (the last one
    is +Inf), then the sum of the durations."""
    values = stats.steps.get(outcome)
    if values is None:
        values = stats.steps[outcome] = [0.0] * (len(STEP_BUCKETS) + 2)
    values[bisect_left(STEP_BUCKETS, seconds)] += 1  # the first bucket with seconds <= le
    values[-1] += seconds
