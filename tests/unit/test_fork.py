"""``hookline.fork``: a forked child exits with its function's status, answers
``ForkedChild`` like a ``subprocess.Popen`` (poll, wait with a timeout, signals as -N), and
names itself."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookline.fork import ForkedChild, fork, stop


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # fork() froze this test process's objects


def test_the_status_is_the_functions() -> None:
    def exits_3() -> None:
        raise SystemExit(3)

    def raises() -> None:
        raise RuntimeError("boom")

    assert fork("t-exit", exits_3).wait(timeout=30) == 3
    assert fork("t-ok", lambda: None).wait(timeout=30) == 0
    assert fork("t-raise", raises).wait(timeout=30) == 1


def test_a_running_child_times_out_then_stops_on_a_signal(tmp_path: Path) -> None:
    ready = tmp_path / "ready"

    def sleeps() -> None:
        ready.write_text(Path("/proc/self/comm").read_text())
        time.sleep(60)

    child = fork("hookline-test", sleeps)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert ready.read_text().strip() == "hookline-test"
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.05)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    child.send_signal(signal.SIGTERM)  # reaped: no signal to a pid that may be reused


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"

    def stubborn() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ready.touch()
        time.sleep(60)

    child = fork("t-stubborn", stubborn)
    while not ready.exists():
        time.sleep(0.01)
    stop([child], grace=0.2)
    assert child.returncode == -signal.SIGKILL


def test_a_child_reaped_elsewhere_reads_as_failed() -> None:
    child = fork("t-gone", lambda: None)
    os.waitpid(child.pid, 0)
    assert ForkedChild(child.pid).poll() == 255
