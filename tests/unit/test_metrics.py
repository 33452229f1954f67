"""``hookline.metrics``: webhook counters and the ack histogram, by source and outcome."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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


SHARED_COUNTING = """
import os, sys
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from hookline.metrics import Metrics
metrics = Metrics()
for _ in range(int(sys.argv[2])):
    metrics.webhook_answered("stripe", "accepted", 0.001)
pid = os.fork()
if pid == 0:
    for _ in range(5):
        metrics.webhook_answered("stripe", "accepted", 0.001)
    os._exit(0)
os.waitpid(pid, 0)
print(pid, os.getpid())
"""


def _count_in_a_fresh_process(directory: Path, increments: int) -> tuple[int, int, int]:
    """(getpid system calls, child pid, parent pid) of SHARED_COUNTING, run under strace."""
    trace = directory / "trace"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=getpid", "-o", str(trace),
         sys.executable, "-c", SHARED_COUNTING, str(directory), str(increments)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    child, parent = (int(x) for x in done.stdout.split())
    calls = trace.read_text().count("getpid()")
    trace.unlink()
    return calls, child, parent


def test_shared_counters_ask_no_pid_per_increment_and_a_fork_counts_apart(tmp_path: Path) -> None:
    """Multiprocess mode checks for a fork on every increment; with hookline's pid kept
    and renewed at fork, that is no ``getpid`` system call each, and a forked child still
    writes a file of its own (the parent's counts are never counted twice)."""
    (tmp_path / "none").mkdir()
    start_up, _, _ = _count_in_a_fresh_process(tmp_path / "none", 0)
    calls, child, parent = _count_in_a_fresh_process(tmp_path, 1_000)
    assert calls - start_up < 10  # 3,000 more when every increment asks
    assert sorted(p.name for p in tmp_path.glob("counter_*.db")) == sorted(
        [f"counter_{parent}.db", f"counter_{child}.db"]
    )
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    total = registry.get_sample_value(
        "hookline_webhook_requests_total", {"source": "stripe", "outcome": "accepted"}
    )
    assert total == 1_005


def test_making_the_shared_directory_imports_no_prometheus_client() -> None:
    """``serve`` makes the directory before it forks the workers, which never count: a
    prometheus_client imported then would sit in every worker (~2 MiB each)."""
    script = (
        "import sys\n"
        "from hookline.metrics_dir import shared_counters\n"
        "with shared_counters(2):\n"
        "    print('prometheus_client' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


def test_a_serve_removes_the_counters_a_killed_serve_left_behind(tmp_path: Path) -> None:
    """``kill -9`` of a serve leaves its directory behind; the next serve removes it (its
    pid runs no more), but never one whose serve still runs, nor a name it did not make."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    dead_pid = int(ended.stdout)
    left_behind = tmp_path / f"hookline-metrics-{dead_pid}-ab12cd34"
    running = tmp_path / f"hookline-metrics-{os.getpid()}-ef56gh78"  # this test's process
    older_name = tmp_path / "hookline-metrics-12345678"  # no pid in it: not ours to judge
    other_host = tmp_path / f"hookline-metrics-{dead_pid}-ij90kl12"  # a container's pid
    for path in (left_behind, running, older_name, other_host):
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"\0" * 16)
        (path / "host").write_text(socket.gethostname())
    (other_host / "host").write_text("another-host")
    script = (
        "import os\n"
        "from hookline.metrics_dir import shared_counters\n"
        "with shared_counters(2) as path:\n"
        "    print(os.path.basename(path))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    made = done.stdout.strip()
    assert made.startswith("hookline-metrics-") and made.split("-")[2].isdigit()
    assert not left_behind.exists()
    assert running.exists() and older_name.exists() and other_host.exists()
    assert not (tmp_path / made).exists()  # its own, removed when it ended
