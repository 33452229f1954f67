"""Prometheus metrics of one ``serve``, in a registry of its own.

Two kinds of series (docs/architecture.md, "Metrics with several replicas"):

- **per serve** — requests by source and outcome, the ack latency histogram: counted by
  the HTTP process that answered. With several HTTP processes they share their counters
  (``hookline.shared_dir``): any process's scrape shows the sum over all of them, so a
  ``serve`` is one replica to Prometheus, which adds up the replicas.
- **deployment-wide** — queue depth, live workers, runs finished by outcome, step
  durations: the same value from every ``serve`` replica (aggregate with ``max``, not
  ``sum``). Runs and steps are counted by the worker processes themselves, which write
  their counters with each heartbeat (``WorkerStats``); a scrape adds up those rows — a
  read of the small ``workers`` table, never a scan of the runs. Queue depth is a count
  bounded by ``QUEUE_DEPTH_CAP``, cached for ``STORE_READ_SECONDS``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from hookline.shared_dir import process_id, shared_directory
from hookline.step_stats import STEP_BUCKETS, observe_step
from hookline.store.base import WorkerStats

__all__ = ["STEP_BUCKETS", "Metrics", "WorkerCounters", "observe_step"]


def _count_without_getpid() -> None:
    """In multiprocess mode ``prometheus_client`` asks ``os.getpid()`` on every increment
    (to notice a fork): three system calls per webhook. The same check against a pid
    renewed at each fork (``process_id``), before any metric is made."""
    from prometheus_client import values

    if shared_directory() is not None and not getattr(values.ValueClass, "_hookline", False):
        values.ValueClass = values.MultiProcessValue(process_identifier=process_id)  # type: ignore[no-untyped-call]
        values.ValueClass._hookline = True


_count_without_getpid()

ACK_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RUN_OUTCOMES = ("succeeded", "failed", "retrying", "queued")
QUEUE_DEPTH_CAP = 100_000
STORE_READ_SECONDS = 2.0  # a scrape reads the store at most this often per process


class WorkerCounters(Collector):
    """Runs by outcome and step durations of every worker, from the last store read."""

    def __init__(self) -> None:
        self.stats = WorkerStats()

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        runs = CounterMetricFamily(
            "hookline_runs",
            "Runs finished by all workers, by outcome (deployment-wide)",
            labels=["outcome"],
        )
        for outcome in sorted({*RUN_OUTCOMES, *self.stats.runs}):
            runs.add_metric([outcome], self.stats.runs.get(outcome, 0))
        yield runs
        steps = HistogramMetricFamily(
            "hookline_step_seconds",
            "Duration of step attempts of all workers, by outcome (deployment-wide)",
            labels=["outcome"],
        )
        for outcome, values in sorted(self.stats.steps.items()):
            if len(values) != len(STEP_BUCKETS) + 2:
                continue  # written by another version of hookline
            cumulative, buckets = 0.0, []
            for le, count in zip((*map(str, STEP_BUCKETS), "+Inf"), values[:-1], strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            steps.add_metric([outcome], buckets, sum_value=values[-1])
        yield steps

    def describe(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        return iter(())


class ProcessGauges(Collector):
    """What this process reports as it is, never added up across processes: the
    deployment-wide values it last read from the store, and its own pid."""

    def __init__(self) -> None:
        self.queue_depth = 0
        self.workers = 0
        self.http_process = 0  # the index of this HTTP process

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "hookline_queue_depth",
            f"Runs waiting to be claimed, counted up to {QUEUE_DEPTH_CAP} (deployment-wide)",
            value=self.queue_depth,
        )
        yield GaugeMetricFamily(
            "hookline_workers", "Worker processes heartbeating (deployment-wide)", self.workers
        )
        pid = GaugeMetricFamily(
            "hookline_http_process_pid",
            "The process id of the HTTP process that answered this scrape, by its index",
            labels=["index"],
        )
        pid.add_metric([str(self.http_process)], os.getpid())
        yield pid

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhook_requests = Counter(
            "hookline_webhook_requests",
            "Webhook requests by source and outcome",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "hookline_webhook_ack_seconds",
            "Time from request start to the acknowledgement being sent",
            ["source"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.http_refused = Counter(
            "hookline_http_refused",
            "Requests refused before reaching a route (431, 408, 503 overloaded), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.gauges = ProcessGauges()
        self.worker_counters = WorkerCounters()
        # What a scrape shows: the counters above, of this process or, with several HTTP
        # processes, of all of them (the files of the shared directory); then the rest.
        self.scrape_registry = self.registry
        shared = shared_directory()
        if shared is not None:
            self.scrape_registry = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(self.scrape_registry, path=shared)  # type: ignore[no-untyped-call]
        self.scrape_registry.register(self.worker_counters)
        self.scrape_registry.register(self.gauges)
        self.store_read_at = float("-inf")  # time.monotonic() of the last store read
        self._webhook_counters: dict[tuple[str, str], Counter] = {}
        self._ack_histograms: dict[str, Histogram] = {}

    def webhook_answered(self, source: str, outcome: str, ack_seconds: float | None) -> None:
        """Count one webhook request; ``ack_seconds`` is observed for acknowledged ones.

        The labelled children are looked up once per (source, outcome) and kept: on the
        ingest path ``labels()`` (a lock and a tuple key per call) costs more than the
        increment itself. Both label sets are bounded (configured sources, fixed outcomes).
        """
        counter = self._webhook_counters.get((source, outcome))
        if counter is None:
            counter = self._webhook_counters[source, outcome] = self.webhook_requests.labels(
                source, outcome
            )
        counter.inc()
        if ack_seconds is not None:
            histogram = self._ack_histograms.get(source)
            if histogram is None:
                histogram = self._ack_histograms[source] = self.ack_seconds.labels(source)
            histogram.observe(ack_seconds)

    def refused(self, reason: str) -> None:
        """Count a refusal made below the routes (``hookline.web.protocol``, ``limits``);
        ``reason`` is the answer's error code, from a fixed set."""
        self.http_refused.labels(reason).inc()

    def store_read_due(self) -> bool:
        """Whether a scrape should read the store again (else it serves the last values)."""
        now = time.monotonic()
        if now - self.store_read_at < STORE_READ_SECONDS:
            return False
        self.store_read_at = now
        return True

    def render(self) -> bytes:
        return generate_latest(self.scrape_registry)
