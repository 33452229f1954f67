"""The threads that run a worker's sync steps.

A sync step function runs off the event loop, in one of at most ``size`` threads. This does
what ``loop.run_in_executor`` with a ``ThreadPoolExecutor`` did, with less on the way: the
call goes to an idle thread (or a new one, while there are fewer than ``size``) through one
queue, and its outcome comes back to the loop by one ``call_soon_threadsafe`` that settles an
asyncio future. ``run_in_executor`` made a ``concurrent.futures.Future`` with its condition
lock and chained it to an asyncio future by callbacks both ways, about 12 µs of CPU more per
call (docs/benchmarks.md, "A cheaper run on SQLite").

The future is never cancelled from here: a thread cannot be stopped, so whoever awaits it
shields it and waits for the thread's end when it is cancelled (``Context._call_sync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any

_Work = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if isinstance(error, StopIteration):  # a future refuses it (as a coroutine does)
        converted = RuntimeError(f"a sync step raised StopIteration: {error!r}")
        converted.__cause__ = error
        error = converted
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class StepThreads:
    def __init__(self, size: int, name: str = "hookline-step") -> None:
        if size < 1:
            raise ValueError("StepThreads needs at least one thread")
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one release per thread waiting for work
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def threads(self) -> int:
        return len(self._threads)

    def submit(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``call()`` in a step thread; its result (or exception) settles the future."""
        if self._closed:
            raise RuntimeError("the step threads are closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((call, loop, future))
        if not self._idle.acquire(blocking=False):
            self._add_thread()
        return future

    def _add_thread(self) -> None:
        with self._lock:
            if len(self._threads) >= self._size or self._closed:
                return  # the call waits in the queue for the first thread that is free
            thread = threading.Thread(
                target=self._main, name=f"{self._name}_{next(self._numbers)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _main(self) -> None:
        take = self._queue.get
        while (work := take()) is not None:
            call, loop, future = work
            del work
            try:
                value, error = call(), None
            except BaseException as exc:  # as run_in_executor: the caller gets it
                value, error = None, exc
            # Idle before the caller can hear of the outcome: a call it makes next finds
            # this thread free instead of starting another.
            self._idle.release()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, value, error)
            del call, loop, future, value, error

    def close(self) -> None:
        """Let every thread end once the calls queued before are done (does not wait)."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
