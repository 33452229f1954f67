"""Group commit of ingests on PostgreSQL: many events per transaction, one round trip.

Every ``ingest`` call queues its event; while fewer than ``max_in_flight`` batches are
running, a batch takes everything queued so far and writes it with ONE statement
(``ingest_batch``: the events, their runs and the wake-ups of their handlers), in
autocommit mode, so the statement's return is the commit. Only then are the callers'
futures resolved: an ack still follows its commit. While batches are in flight the next
requests queue, so under load each round trip carries many events; alone, an event goes
at once (one round trip instead of BEGIN, insert, runs, notify, COMMIT).

What the one statement cannot decide is left to the single-event path (``fallback``, the
store's ordinary transaction), called per event afterwards:

- an event whose key already exists (a duplicate: the existing id, maybe resumed runs),
  or whose key appears earlier in the same batch;
- every event of a batch whose statement failed (one bad row must fail only its caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hookline.errors import StoreError
from hookline.store.base import IngestResult, NewEvent

BatchWriter = Callable[[dict[str, Any]], Awaitable[set[str]]]
Fallback = Callable[[NewEvent, bool], Awaitable[IngestResult]]


@dataclass(slots=True)
class _Pending:
    event: NewEvent
    resume_failed: bool
    future: asyncio.Future[IngestResult] = field(repr=False)


def batch_params(events: Sequence[NewEvent]) -> dict[str, Any]:
    """The parameters of ``ingest_batch``: one array per column, runs flattened in order."""
    runs = [(event.id, run) for event in events for run in event.runs]
    return {
        "ids": [e.id for e in events],
        "sources": [e.source for e in events],
        "event_ids": [e.provider_event_id for e in events],
        "types": [e.type for e in events],
        "statuses": ["queued" if e.runs else "unhandled" for e in events],
        "received_at": [float(e.received_at) for e in events],  # one type per array
        "headers": [json.dumps(e.headers, separators=(",", ":")) for e in events],
        "bodies": [e.body for e in events],
        "run_ids": [run.id for _, run in runs],
        "run_event_ids": [event_id for event_id, _ in runs],
        "run_handlers": [run.handler for _, run in runs],
        "run_max_attempts": [run.max_attempts for _, run in runs],
        "run_keys": [run.concurrency_key for _, run in runs],
    }


class IngestBatcher:
    def __init__(
        self, write: BatchWriter, fallback: Fallback, max_in_flight: int, max_batch: int = 500
    ) -> None:
        self._write = write
        self._fallback = fallback
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def ingest(self, event: NewEvent, resume_failed: bool) -> IngestResult:
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(event, resume_failed, future))
        self._start_batches()
        return await future

    def _start_batches(self) -> None:
        while self._queue and len(self._tasks) < self._max_in_flight:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            task = asyncio.create_task(self._commit(batch), name="hookline-ingest-batch")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._start_batches()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            await self._commit_batch(batch)
        finally:  # cancelled (the store is closing): no caller waits forever
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(StoreError("the store closed during the ingest"))

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        first: list[_Pending] = []  # the first event of each key: the statement's rows
        later: list[_Pending] = []
        seen: set[tuple[str, str]] = set()  # (source, provider event id): the dedupe key
        for item in batch:
            dedupe = (item.event.source, item.event.provider_event_id)
            (later if dedupe in seen else first).append(item)
            seen.add(dedupe)
        try:
            inserted = await self._write(batch_params([item.event for item in first]))
        except Exception:  # each caller gets its own answer or error below
            inserted = set()
        rest: list[_Pending] = []
        for item in first:
            if item.event.id in inserted:
                if not item.future.done():
                    item.future.set_result(IngestResult(item.event.id, duplicate=False))
            else:
                rest.append(item)
        # Alone, as the ordinary path would: distinct keys at once, then the later copies of
        # a key (which then find the first one's row; concurrent copies are safe anyway).
        await asyncio.gather(*(self._alone(item) for item in rest))
        await asyncio.gather(*(self._alone(item) for item in later))

    async def _alone(self, item: _Pending) -> None:
        try:
            result = await self._fallback(item.event, item.resume_failed)
        except Exception as exc:  # handed to its caller
            if not item.future.done():
                item.future.set_exception(exc)
        else:
            if not item.future.done():
                item.future.set_result(result)

    async def drain(self) -> None:
        """Wait for every queued and running batch (the store is closing)."""
        while self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
