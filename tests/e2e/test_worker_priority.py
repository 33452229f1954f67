"""The workers `serve` starts (forked, or restarted as new interpreters) run every thread at
the configured priority: nice, and by default the SCHED_IDLE class."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support.clients import wait_for
from tests.support.procs import children, stat_fields
from tests.support.server import HooklineProcess, base_config

HANDLERS = ["tests.e2e.pipeline_handlers"]
SCHED_OTHER, SCHED_IDLE = 0, 5  # /proc/PID/stat's policy field

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux only")


def thread_priorities(pid: int) -> set[tuple[int, int]]:
    """(policy, nice) of every thread of ``pid``."""
    seen = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = stat_fields(task / "stat")
        seen.add((int(fields[38]), int(fields[16])))
    return seen


def start(tmp_path: Path, sqlite_url: str, pipeline: dict[str, object]) -> HooklineProcess:
    config = base_config(sqlite_url, handlers=HANDLERS, workers=2, pipeline=pipeline)
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    return server.start()


def workers_of(server: HooklineProcess) -> list[int]:
    assert server.proc is not None
    return children(server.proc.pid)


def started_workers(server: HooklineProcess) -> tuple[int, list[int]]:
    """The nice of ``serve`` and the pids of its two workers, once both have started."""
    assert server.proc is not None
    base_nice = int(stat_fields(Path(f"/proc/{server.proc.pid}/stat"))[16])
    pids = wait_for(lambda: workers_of(server) if len(workers_of(server)) == 2 else None)
    wait_for(lambda: server.logs().count('"worker started"') == 2, what="workers started")
    return base_nice, pids


def test_workers_run_every_thread_in_sched_idle_by_default_restarted_ones_too(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = start(tmp_path, sqlite_url, {"worker_nice": 7})
    try:
        assert server.proc is not None
        base_nice, first = started_workers(server)
        for pid in first:
            assert thread_priorities(pid) == {(SCHED_IDLE, base_nice + 7)}, pid
        assert thread_priorities(server.proc.pid) == {(SCHED_OTHER, base_nice)}

        os.kill(first[0], signal.SIGKILL)
        wait_for(
            lambda: len(workers_of(server)) == 2 and first[0] not in workers_of(server),
            timeout=20,
            what="a replacement worker",
        )
        wait_for(lambda: server.logs().count('"worker started"') == 3, what="it started")
        (replacement,) = set(workers_of(server)) - set(first)
        assert thread_priorities(replacement) == {(SCHED_IDLE, base_nice + 7)}
    finally:
        server.stop()


def test_workers_stay_in_the_normal_class_when_sched_idle_is_off(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = start(tmp_path, sqlite_url, {"worker_nice": 7, "worker_sched_idle": False})
    try:
        base_nice, pids = started_workers(server)
        for pid in pids:
            assert thread_priorities(pid) == {(SCHED_OTHER, base_nice + 7)}, pid
    finally:
        server.stop()
