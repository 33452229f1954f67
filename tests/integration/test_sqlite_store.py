"""What only the SQLite store has: one writer for the whole file, so long writes are chunked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookline.store import sqlite as sqlite_store
from hookline.store.base import EventFilter, NewEvent, NewRun
from hookline.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(f"sqlite:///{tmp_path / 'h.db'}")
    await s.open()
    await s.migrate()
    yield s
    await s.close()


def event(n: int, at: float, handlers: tuple[str, ...] = (), source: str = "stripe") -> NewEvent:
    runs = [NewRun(f"run_{n}_{h}", h, 3) for h in handlers]
    return NewEvent(f"evt_{n}", source, f"p{n}", "t", at, {}, b"{}", runs)


async def test_prune_commits_in_chunks_and_an_ack_never_waits_for_all_of_them(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BULK_CHUNK", 10)
    old = time.time() - 86_400
    for n in range(35):
        await store.ingest(event(n, old), resume_failed=True)
    batches = store._writer.batches
    prune = asyncio.create_task(store.prune(time.time() - 3600, include_failed=False))
    await asyncio.sleep(0)  # the prune has queued its first chunk
    ack = asyncio.create_task(store.ingest(event(99, time.time()), resume_failed=True))
    done, _ = await asyncio.wait({prune, ack}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {ack}  # the ingest committed between two chunks of the prune
    assert await prune == 35
    assert store._writer.batches - batches >= 4  # chunks of at most 10 events


async def test_bulk_redeliver_commits_in_chunks(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BULK_CHUNK", 10)
    for n in range(25):
        await store.ingest(event(n, time.time(), ("h",)), resume_failed=True)
    batches = store._writer.batches
    everything_from_stripe = EventFilter(source="stripe")
    redeliver = asyncio.create_task(store.redeliver_matching(everything_from_stripe, "fresh"))
    await asyncio.sleep(0)
    other = event(99, time.time(), source="github")  # not one of those redelivered
    ack = asyncio.create_task(store.ingest(other, resume_failed=True))
    done, _ = await asyncio.wait({redeliver, ack}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {ack}
    assert await redeliver == 25
    assert store._writer.batches - batches >= 3  # chunks of at most 10 events


async def test_a_job_written_by_the_previous_version_still_gets_its_run(
    store: SQLiteStore, tmp_path: Path
) -> None:
    # During an upgrade a process of the previous version may still insert jobs into the
    # migrated file the way it did: its first run described in the `job` JSON, for the
    # trigger job_first_run to insert.
    import json
    import sqlite3

    now = time.time()
    old_job = json.dumps(
        {"key": "k-old", "fingerprint": "fp", "runAt": now, "dueAt": now, "runId": "run_old",
         "handler": "reports:generate", "maxAttempts": 3, "concurrencyKey": None}
    )  # fmt: skip
    with sqlite3.connect(tmp_path / "h.db") as conn:
        conn.execute(
            "INSERT INTO events (id, source, provider_event_id, type, status, received_at,"
            " headers, body, job) VALUES ('job_old', 'jobs', 'report/k-old', 'report',"
            " 'queued', ?, '{}', x'7b7d', ?)",
            (now, old_job),
        )
    run = await store.get_run("run_old")
    assert run is not None and (run.event_id, run.status, run.max_attempts) == (
        "job_old",
        "queued",
        3,
    )
