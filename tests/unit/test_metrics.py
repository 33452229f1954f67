"""``hookline.metrics``: webhook counters and the ack histogram, by source and outcome."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from hookline.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_webhook_answers_are_counted_and_acks_timed() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.webhook_answered("stripe", "accepted", 0.004)
    metrics.webhook_answered("stripe", "duplicate", 0.02)
    metrics.webhook_answered("stripe", "invalid_signature", None)
    metrics.webhook_answered("_unknown", "unknown_source", None)

    got = samples(metrics)
    requests = "hookline_webhook_requests_total"
    assert got[requests, (("outcome", "accepted"), ("source", "stripe"))] == 3
    assert got[requests, (("outcome", "duplicate"), ("source", "stripe"))] == 1
    assert got[requests, (("outcome", "invalid_signature"), ("source", "stripe"))] == 1
    assert got[requests, (("outcome", "unknown_source"), ("source", "_unknown"))] == 1
    ack = "hookline_webhook_ack_seconds"
    assert got[f"{ack}_count", (("source", "stripe"),)] == 4  # rejected requests are not acks
    assert got[f"{ack}_bucket", (("le", "0.005"), ("source", "stripe"))] == 3
    assert (f"{ack}_count", (("source", "_unknown"),)) not in got


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.webhook_answered("stripe", "accepted", 0.001)
    assert (
        "hookline_webhook_requests_total",
        (("outcome", "accepted"), ("source", "stripe")),
    ) not in samples(second)
