"""A worker yields the CPU to the HTTP processes: nice, and on Linux the SCHED_IDLE class.

Each case runs in a fresh interpreter: a thread cannot take its priority back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hookline import worker

PROBE = """
import json, os, sys, threading
from hookline.worker import lower_priority

def seen():
    return [os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)]

before = seen()
lower_priority(int(sys.argv[1]), sched_idle=sys.argv[2] == "idle")
in_thread = []
later = threading.Thread(target=lambda: in_thread.append(seen()))
later.start()
later.join()
print(json.dumps({"before": before, "main": seen(), "later_thread": in_thread[0]}))
"""

needs_sched_idle = pytest.mark.skipif(
    not hasattr(os, "SCHED_IDLE"), reason="the OS has no SCHED_IDLE class"
)


def probe(increment: int, mode: str) -> dict[str, list[int]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(increment), mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, list[int]] = json.loads(done.stdout)
    return result


@needs_sched_idle
def test_sched_idle_moves_the_worker_and_the_threads_it_starts_after() -> None:
    seen = probe(3, "idle")
    nice = seen["before"][1] + 3
    assert seen["before"][0] == os.SCHED_OTHER
    assert seen["main"] == [os.SCHED_IDLE, nice]
    assert seen["later_thread"] == [os.SCHED_IDLE, nice]


@needs_sched_idle
def test_without_sched_idle_a_worker_is_only_niced() -> None:
    seen = probe(3, "other")
    assert seen["main"] == [os.SCHED_OTHER, seen["before"][1] + 3]
    assert seen["later_thread"] == seen["main"]


def test_nothing_changes_with_neither() -> None:
    seen = probe(0, "other")
    assert seen["main"] == seen["before"] == seen["later_thread"]


@needs_sched_idle
def test_a_refused_sched_idle_is_logged_and_the_worker_runs_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A sandbox's seccomp filter, say. Patched: the test process keeps its own priority.
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(worker.os, "sched_setscheduler", refuse)
    worker.lower_priority(0, sched_idle=True)
    assert [r.getMessage() for r in caplog.records] == ["could not move the worker to SCHED_IDLE"]
    assert "Operation not permitted" in caplog.records[0].__dict__["error"]
