"""``hookline.web.lockout.LoginLimiter`` on a fake clock: the window, the retry time, the
reset on success and the bound on tracked clients."""

from __future__ import annotations

from hookline.web.lockout import LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_locked_after_max_failures_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(3, 300, clock=clock)
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


def test_failures_spread_wider_than_the_window_never_lock() -> None:
    clock = Clock()
    limiter = LoginLimiter(3, 60, clock=clock)
    for _ in range(20):
        limiter.failed("a")
        clock.now += 31
        assert limiter.retry_after("a") is None


def test_a_success_before_the_lockout_starts_the_count_again() -> None:
    clock = Clock()
    limiter = LoginLimiter(2, 60, clock=clock)
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
