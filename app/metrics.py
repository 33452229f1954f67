"""Prometheus metrics of one process, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ACK_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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
        self.queue_depth = Gauge(
            "hookline_queue_depth", "Runs waiting to be claimed", registry=self.registry
        )
        self.runs = Gauge(
            "hookline_runs", "Runs in the store by status", ["status"], registry=self.registry
        )
        self.workers = Gauge(
            "hookline_workers", "Worker processes heartbeating", registry=self.registry
        )
        self.step_seconds = Histogram(
            "hookline_step_seconds",
            "Duration of step attempts recorded in the store, by outcome",
            ["outcome"],
            registry=self.registry,
        )
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
