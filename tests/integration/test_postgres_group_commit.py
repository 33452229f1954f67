"""Group commit of ingests on PostgreSQL: many events per statement, the answers of one by one.

Two stores on one database stand for two ``serve`` processes. Every event is sent several
times at once, from both; each key must be stored exactly once, with exactly one answer
``duplicate: false`` and the same id in every answer, and its run created once.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from hookline.errors import StoreError
from hookline.store.base import IngestResult, NewEvent, NewRun
from hookline.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres
KEYS = 150
COPIES = 3


def event(n: int, copy: int, provider_event_id: str | None = None) -> NewEvent:
    return NewEvent(
        id=f"evt_{n}_{copy}",
        source="stripe",
        provider_event_id=provider_event_id or f"pe_{n}",
        type="t",
        received_at=1_700_000_000.0,
        headers={"content-type": "application/json"},
        body=b'{"n": %d}' % n,
        runs=[NewRun(f"run_{n}_{copy}", "fulfil", 3, None)],
    )


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[list[PostgresStore]]:
    opened = [PostgresStore(pg_url), PostgresStore(pg_url)]
    for store in opened:
        await store.open()
    await opened[0].migrate()
    yield opened
    for store in opened:
        await store.close()


def count_statements(store: PostgresStore) -> list[int]:
    """Count the store's group-commit statements from now on (into the returned list)."""
    count = [0]
    write = store._write_ingest_batch

    async def counted(params: dict[str, object]) -> set[str]:
        count[0] += 1
        return await write(params)

    store._ingests._write = counted
    return count


async def test_concurrent_copies_are_stored_once_with_one_first_answer(
    stores: list[PostgresStore],
) -> None:
    statements = [count_statements(store) for store in stores]
    sends = [(n, copy) for n in range(KEYS) for copy in range(COPIES)]
    random.Random(7).shuffle(sends)
    results: list[IngestResult] = await asyncio.gather(
        *(
            stores[i % 2].ingest(event(n, copy), resume_failed=True)
            for i, (n, copy) in enumerate(sends)
        )
    )

    by_key: dict[int, list[IngestResult]] = {}
    for (n, _), result in zip(sends, results, strict=True):
        by_key.setdefault(n, []).append(result)
    for n, answers in by_key.items():
        assert [a.duplicate for a in answers].count(False) == 1, (n, answers)
        assert len({a.id for a in answers}) == 1, (n, answers)
        assert all(not a.resumed_run_ids for a in answers)

    stored = [await stores[0].get_event(answers[0].id) for answers in by_key.values()]
    assert all(e is not None for e in stored)
    counts = await stores[0].run_counts()
    assert sum(counts.values()) == KEYS  # one run per key: the duplicates started none
    assert Counter(s for s in counts if counts[s]) == Counter({"queued": 1})
    # many events per statement: far fewer round trips than events
    total = sum(count[0] for count in statements)
    assert 0 < total < len(sends) / 4, total


async def test_a_bad_event_fails_alone(pg_url: str, stores: list[PostgresStore]) -> None:
    """One row PostgreSQL refuses (a NUL in a text column) fails its caller only."""
    store = PostgresStore(pg_url, pool_size=1)  # one batch at a time: the 2nd and 3rd share one
    await store.open()
    statements = count_statements(store)
    try:
        results = await asyncio.gather(
            store.ingest(event(1, 0), resume_failed=True),
            store.ingest(event(2, 0, provider_event_id="pe_\x00"), resume_failed=True),
            store.ingest(event(3, 0), resume_failed=True),
            return_exceptions=True,
        )
    finally:
        await store.close()
    assert statements == [2]
    assert isinstance(results[1], StoreError)
    assert results[0] == IngestResult("evt_1_0", duplicate=False)
    assert results[2] == IngestResult("evt_3_0", duplicate=False)
    assert await stores[0].get_event("evt_3_0") is not None
