"""The failed-login lockout on a fake clock: the window, the retry time, the reset on
success and the bound on tracked clients, for the in-memory ``LoginLimiter`` (one HTTP
process) and the ``SharedLoginLimiter`` the HTTP processes of one serve count in together."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from hookline.web.lockout import Limiter, LoginLimiter
from hookline.web.shared_lockout import FILE_NAME, SharedLoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


MakeLimiter = Callable[[int, float, Clock], Limiter]


@pytest.fixture(params=["memory", "shared"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> MakeLimiter:
    if request.param == "memory":
        return lambda n, window, clock: LoginLimiter(n, window, clock=clock)
    return lambda n, window, clock: SharedLoginLimiter(str(tmp_path), n, window, clock=clock)


def test_locked_after_max_failures_until_the_oldest_leaves_the_window(make: MakeLimiter) -> None:
    clock = Clock()
    limiter = make(3, 300, clock)
    for step in range(3):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
        clock.now += 10 * (step + 1)  # failures at 1000, 1010, 1030
    assert clock.now == 1060
    assert limiter.retry_after("a") == 240  # the first failure leaves the window at 1300
    assert limiter.retry_after("b") is None
    clock.now = 1300
    assert limiter.retry_after("a") is None
    limiter.failed("a")  # failures at 1010, 1030, 1300: locked until 1310
    assert limiter.retry_after("a") == 10


def test_failures_spread_wider_than_the_window_never_lock(make: MakeLimiter) -> None:
    clock = Clock()
    limiter = make(3, 60, clock)
    for _ in range(20):
        limiter.failed("a")
        clock.now += 31
        assert limiter.retry_after("a") is None


def test_a_success_before_the_lockout_starts_the_count_again(make: MakeLimiter) -> None:
    clock = Clock()
    limiter = make(2, 60, clock)
    limiter.failed("a")
    limiter.succeeded("a")
    limiter.failed("a")
    assert limiter.retry_after("a") is None


def test_the_number_of_tracked_clients_is_bounded() -> None:
    limiter = LoginLimiter(1, 60, clock=Clock(), max_clients=100)
    for n in range(1000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._failures) == 100
    assert limiter.retry_after("10.0.3.231") == 60  # the newest are kept
    assert limiter.retry_after("10.0.0.0") is None


def test_the_processes_of_one_serve_count_together(tmp_path: Path) -> None:
    """Two limiters on one directory stand for two HTTP processes (each its own
    connection): failures sent to either count toward one lockout, seen by both, and a
    success on one clears the count for both."""
    clock = Clock()
    first, second = (SharedLoginLimiter(str(tmp_path), 4, 300, clock=clock) for _ in "ab")
    for limiter in (first, second, first, second):
        assert first.retry_after("a") is None and second.retry_after("a") is None
        limiter.failed("a")
        clock.now += 1
    assert first.retry_after("a") == second.retry_after("a") == 296
    second.succeeded("a")
    assert first.retry_after("a") is None


def test_the_shared_file_keeps_only_the_newest_failures(tmp_path: Path) -> None:
    clock = Clock()
    limiter = SharedLoginLimiter(str(tmp_path), 1, 60, clock=clock, max_rows=100)
    for n in range(1000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}")
    rows = sqlite3.connect(tmp_path / FILE_NAME).execute("SELECT count(*) FROM failures")
    assert rows.fetchone()[0] <= 101
    assert limiter.retry_after("10.0.3.231") == 60  # the newest are kept
    assert limiter.retry_after("10.0.0.0") is None
    clock.now += 61
    limiter.failed("b")  # what left the window goes
    rows = sqlite3.connect(tmp_path / FILE_NAME).execute("SELECT client FROM failures")
    assert rows.fetchall() == [("b",)]


def test_a_failing_shared_file_is_answered_from_the_process_own_count(tmp_path: Path) -> None:
    """A file that fails loses no count: the process's own one answers (the failures it
    saw before included), and once the file works again it counts there again."""
    clock = Clock()
    limiter = SharedLoginLimiter(str(tmp_path), 2, 60, clock=clock)
    limiter.failed("a")  # in the file and in the process's own count
    (tmp_path / FILE_NAME).unlink()
    (tmp_path / f"{FILE_NAME}-wal").unlink(missing_ok=True)
    (tmp_path / f"{FILE_NAME}-shm").unlink(missing_ok=True)
    (tmp_path / FILE_NAME).write_bytes(b"not a database, " * 64)
    limiter._conn = None  # as a new process would open it
    limiter.failed("a")
    assert limiter.retry_after("a") == 60
    (tmp_path / FILE_NAME).unlink()  # a working (new) file: the shared count again
    other = SharedLoginLimiter(str(tmp_path), 2, 60, clock=clock)
    other.failed("b")
    other.failed("b")
    assert limiter.retry_after("b") == 60
