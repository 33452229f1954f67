"""Group commit of a worker's writes on PostgreSQL: the step records and the run endings
of concurrent runs, many per round trip.

A run's ``record_step`` (or ``finish_run``) queues its write and waits. While fewer than
``max_in_flight`` batches are running, a batch takes what is queued and writes it at once
(``write``: PostgresStore writes step records and endings in one transaction); the callers
are answered only after it committed. So a run never goes past a step before that step's
record is durable, exactly as with one statement per step; under load one commit carries
the steps of many runs, and alone a write still goes at once (it waits for nobody).

One batch never holds two writes with the same ``key`` (two records of one memo row: an
``ON CONFLICT DO UPDATE`` cannot touch a row twice in a statement); the later one waits for
the next batch. What a batch cannot decide (``write`` answers None for it), and every write
of a batch that failed, is written alone (``alone``, the one-write path, at most
``max_alone`` at once), so one bad row fails only its caller and the answers are the
one-write path's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hookline.errors import StoreError

I = TypeVar("I")  # noqa: E741 - the item written
R = TypeVar("R")  # its answer


@dataclass(slots=True)
class _Pending(Generic[I, R]):
    item: I
    future: asyncio.Future[R] = field(repr=False)


class WriteBatcher(Generic[I, R]):
    def __init__(
        self,
        write: Callable[[Sequence[I]], Awaitable[Sequence[R | None]]],
        alone: Callable[[I], Awaitable[R]],
        key: Callable[[I], Hashable],
        *,
        max_in_flight: int,
        max_batch: int = 256,
        max_alone: int = 4,
        name: str = "hookline-write-batch",
    ) -> None:
        self._write = write
        self._alone = alone
        self._key = key
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        # One-write fallbacks at once: a failed batch of 256 must not take every pooled
        # connection (ingest and claims share the pool) and time the rest out.
        self._alone_slots = asyncio.Semaphore(max_alone)
        self._name = name
        self._queue: list[_Pending[I, R]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # for tests and benches: how many batches were written
        self.items = 0

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future))
        self._start_batches()
        return await future

    def _start_batches(self) -> None:
        while self._queue and len(self._tasks) < self._max_in_flight:
            batch: list[_Pending[I, R]] = []
            later: list[_Pending[I, R]] = []
            taken: set[Hashable] = set()  # the batch's dedupe values (not secrets)
            for pending in self._queue:
                dedupe = self._key(pending.item)
                if len(batch) < self._max_batch and dedupe not in taken:
                    batch.append(pending)
                    taken.add(dedupe)
                else:
                    later.append(pending)
            self._queue = later
            task = asyncio.create_task(self._commit(batch), name=self._name)
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._start_batches()

    async def _commit(self, batch: list[_Pending[I, R]]) -> None:
        try:
            self.batches += 1
            self.items += len(batch)
            try:
                answers: Sequence[R | None] = await self._write([p.item for p in batch])
            except Exception:  # each write goes alone below: its answer, or its own error
                answers = [None] * len(batch)
            alone: list[_Pending[I, R]] = []
            for pending, answer in zip(batch, answers, strict=True):
                if answer is None:
                    alone.append(pending)
                elif not pending.future.done():
                    pending.future.set_result(answer)
            await asyncio.gather(*(self._write_alone(p) for p in alone))
        finally:  # cancelled (the store is closing): no caller waits forever
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StoreError("the store closed during the write"))

    async def _write_alone(self, pending: _Pending[I, R]) -> None:
        try:
            async with self._alone_slots:
                answer = await self._alone(pending.item)
        except Exception as exc:  # handed to its caller
            if not pending.future.done():
                pending.future.set_exception(exc)
        else:
            if not pending.future.done():
                pending.future.set_result(answer)

    async def drain(self) -> None:
        """Wait for every queued and running batch (the store is closing)."""
        while self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
