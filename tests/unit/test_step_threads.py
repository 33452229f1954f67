"""``hookline.step_threads``: the threads that run a worker's sync steps."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from hookline.step_threads import StepThreads


@pytest.fixture
def pool() -> Iterator[StepThreads]:
    threads = StepThreads(3, name="t-step")
    yield threads
    threads.close()


async def test_a_call_runs_in_a_step_thread_and_settles_its_future(pool: StepThreads) -> None:
    loop_thread = threading.current_thread()
    name = await pool.submit(lambda: threading.current_thread().name)
    assert name.startswith("t-step_") and name != loop_thread.name


async def test_an_exception_of_the_call_is_the_futures(pool: StepThreads) -> None:
    def boom() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        await pool.submit(boom)
    assert await pool.submit(lambda: 2) == 2  # the thread goes on


async def test_a_stop_iteration_of_the_call_comes_back_as_a_runtime_error(
    pool: StepThreads,
) -> None:
    """An asyncio future refuses StopIteration (run_in_executor left the caller waiting
    forever): it arrives as a RuntimeError, as from a coroutine."""

    def exhausted() -> None:
        next(iter([]))

    with pytest.raises(RuntimeError, match="StopIteration") as raised:
        await asyncio.wait_for(pool.submit(exhausted), 5)
    assert isinstance(raised.value.__cause__, StopIteration)


async def test_an_idle_thread_takes_the_next_call_instead_of_a_new_one(
    pool: StepThreads,
) -> None:
    names = {await pool.submit(lambda: threading.current_thread().name) for _ in range(20)}
    assert len(names) == 1 and pool.threads == 1


async def test_at_most_size_threads_and_the_rest_wait_their_turn(pool: StepThreads) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def busy() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    await asyncio.gather(*(pool.submit(busy) for _ in range(9)))
    assert most == 3 and pool.threads == 3


async def test_calls_run_concurrently_up_to_size(pool: StepThreads) -> None:
    barrier = threading.Barrier(3, timeout=5)  # only passes if three run at once
    assert await asyncio.gather(*(pool.submit(barrier.wait) for _ in range(3)))


async def test_a_cancelled_waiter_leaves_the_call_running_to_its_end(pool: StepThreads) -> None:
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.1)
        finished.set()
        return "done"

    future = pool.submit(slow)
    waiter = asyncio.ensure_future(asyncio.shield(future))
    await asyncio.sleep(0.01)
    waiter.cancel()
    assert await future == "done" and finished.is_set()


async def test_close_ends_the_threads_and_refuses_more(pool: StepThreads) -> None:
    await asyncio.gather(*(pool.submit(lambda: time.sleep(0.01)) for _ in range(3)))
    threads = [t for t in threading.enumerate() if t.name.startswith("t-step_")]
    pool.close()
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(lambda: 1)


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        StepThreads(0)
