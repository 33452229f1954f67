"""``hookline.store.pg_batch.WriteBatcher``: the worker's writes of concurrent runs, many
per round trip, each caller answered only after its batch was written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from hookline.errors import StoreError
from hookline.store.pg_batch import WriteBatcher


class Recorder:
    """A batch writer that holds each batch until released, and remembers them."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.written: list[str] = []  # what is "durable": only after the write returned
        self.alone: list[str] = []
        self.gate = asyncio.Event()

    async def write(self, items: Sequence[str]) -> list[str | None]:
        self.batches.append(list(items))
        await self.gate.wait()
        if "explodes" in items:
            raise StoreError("the batch failed")
        self.written += items
        return [None if item.startswith("undecided") else f"ok:{item}" for item in items]

    async def write_alone(self, item: str) -> str:
        self.alone.append(item)
        if item == "explodes":
            raise StoreError("this one is bad")
        self.written.append(item)
        return f"alone:{item}"


def batcher(recorder: Recorder, in_flight: int = 1) -> WriteBatcher[str, str]:
    return WriteBatcher(
        recorder.write,
        recorder.write_alone,
        key=lambda item: item.split("#")[0],
        max_in_flight=in_flight,
    )


async def test_writes_queued_meanwhile_share_one_batch_answered_after_it_was_written() -> None:
    recorder = Recorder()
    writes = batcher(recorder)
    first = asyncio.create_task(writes.submit("a"))
    await asyncio.sleep(0)  # the first batch is in flight, holding the only slot
    rest = [asyncio.create_task(writes.submit(name)) for name in ("b", "c", "d")]
    await asyncio.sleep(0.01)
    assert recorder.batches == [["a"]]
    assert not any(task.done() for task in [first, *rest])  # nothing answered before its write
    recorder.gate.set()
    assert await first == "ok:a"
    assert await asyncio.gather(*rest) == ["ok:b", "ok:c", "ok:d"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]  # one write for the three
    assert (writes.batches, writes.items) == (2, 4)


async def test_two_writes_of_one_key_never_share_a_batch() -> None:
    recorder = Recorder()
    recorder.gate.set()
    writes = batcher(recorder)
    blocker = asyncio.create_task(writes.submit("x"))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(writes.submit(name)) for name in ("k#1", "m", "k#2")]
    await asyncio.gather(blocker, *tasks)
    assert recorder.batches == [["x"], ["k#1", "m"], ["k#2"]]


async def test_a_failed_batch_is_written_alone_and_fails_only_the_bad_write() -> None:
    recorder = Recorder()
    recorder.gate.set()
    writes = batcher(recorder)
    blocker = asyncio.create_task(writes.submit("x"))
    await asyncio.sleep(0)
    good = [asyncio.create_task(writes.submit(name)) for name in ("g1", "g2")]
    bad = asyncio.create_task(writes.submit("explodes"))
    await blocker
    assert await asyncio.gather(*good) == ["alone:g1", "alone:g2"]
    with pytest.raises(StoreError, match="this one is bad"):
        await bad
    assert sorted(recorder.alone) == ["explodes", "g1", "g2"]


async def test_what_a_batch_cannot_decide_is_written_alone() -> None:
    recorder = Recorder()
    recorder.gate.set()
    writes = batcher(recorder)
    blocker = asyncio.create_task(writes.submit("x"))
    await asyncio.sleep(0)
    decided = asyncio.create_task(writes.submit("d"))
    undecided = asyncio.create_task(writes.submit("undecided"))
    await blocker
    assert await decided == "ok:d"
    assert await undecided == "alone:undecided"
    assert recorder.alone == ["undecided"]


async def test_a_failed_batch_writes_alone_at_most_max_alone_at_once() -> None:
    # each one-write path takes a pooled connection: a failed batch of many must not take them all
    recorder = Recorder()
    recorder.gate.set()
    running = peak = 0

    async def write_alone(item: str) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return f"alone:{item}"

    writes: WriteBatcher[str, str] = WriteBatcher(
        recorder.write, write_alone, key=lambda item: item, max_in_flight=1, max_alone=3
    )
    blocker = asyncio.create_task(writes.submit("x"))
    await asyncio.sleep(0)
    many = [asyncio.create_task(writes.submit(f"g{n}")) for n in range(20)]
    bad = asyncio.create_task(writes.submit("explodes"))  # fails the batch: all go alone
    await blocker
    answers = await asyncio.gather(*many, bad)
    assert answers[:20] == [f"alone:g{n}" for n in range(20)]
    assert peak == 3
