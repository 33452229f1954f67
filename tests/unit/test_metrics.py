"""``hookline.metrics``: webhook counters and the ack histogram, by source and outcome."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
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
        "from hookline.shared_dir import made_for_serve\n"
        "with made_for_serve(2):\n"
        "    print('prometheus_client' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


def test_a_serve_removes_the_counters_a_killed_serve_left_behind(tmp_path: Path) -> None:
    """``kill -9`` of a serve leaves its directory behind; the next serve removes it (nobody
    holds its lock any more), but never one whose serve still holds it, nor one that is
    too young, a symlink, or a directory without a lock file (an older version's)."""
    old = time.time() - 60

    def made(name: str, *, lock_file: bool = True) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"\0" * 16)
        if lock_file:
            (path / "in-use").touch()
        os.utime(path, (old, old))
        return path

    left_behind = made("hookline-metrics-4242-ab12cd34")
    running = made("hookline-metrics-4243-ef56gh78")
    held = os.open(running / "in-use", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_SH)  # as its serve does, in another process
    older_version = made("hookline-metrics-12345678", lock_file=False)
    junk_name = made("hookline-metrics-99999999999999999999-x")  # names are not parsed
    fresh = tmp_path / "hookline-metrics-4244-mn34op56"
    fresh.mkdir()
    (fresh / "in-use").touch()  # its serve is about to lock it
    link = tmp_path / "hookline-metrics-4245-qr78st90"
    link.symlink_to(older_version)
    script = (
        "import os\n"
        "from hookline.shared_dir import made_for_serve\n"
        "with made_for_serve(2) as path:\n"
        "    print(os.path.basename(path))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
    finally:
        os.close(held)
    own = done.stdout.strip()
    assert own.startswith("hookline-metrics-")
    assert not left_behind.exists() and not junk_name.exists()
    assert running.exists() and fresh.exists() and older_version.exists()
    assert link.is_symlink() and (older_version / "counter_1.db").exists()
    assert not (tmp_path / own).exists()  # its own, removed when it ended
