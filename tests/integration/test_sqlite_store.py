"""What only the SQLite store has: one writer for the whole file, so long writes are chunked."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hookline.store import sqlite as sqlite_store
from hookline.store.base import Claim, EventFilter, NewEvent, NewRun, RunOutcome, StepOutcome
from hookline.store.group_commit import OP_LOG_COLUMNS
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


class _Hold:
    """An op that keeps the store's writer thread busy until released, so that the writes
    queued meanwhile go out together in its next batch."""

    def __init__(self, store: SQLiteStore) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

        def op(conn: sqlite3.Connection) -> None:
            self.started.set()
            self.release.wait(10)

        self.task = asyncio.create_task(store._writer.run(op))

    async def __aenter__(self) -> _Hold:
        while not self.started.is_set():
            await asyncio.sleep(0.001)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.task


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the store reads on its writer's connection after a write."""
    seen: list[str] = []
    real = sqlite_store.read_committed

    def counted(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[Any]:
        seen.append(sql)
        return real(conn, sql, params)

    monkeypatch.setattr(sqlite_store, "read_committed", counted)
    return seen


async def _three_claims(store: SQLiteStore) -> list[Claim]:
    """Three events of handler ``h``, their runs claimed by worker ``w1``."""
    for n in range(3):
        await store.ingest(event(n, time.time(), ("h",)), resume_failed=True)
    return [item.claim("w1") for item in await store.claim_runs("w1", ["h"], 3, 30.0)]


def _step(claim: Claim, name: str) -> StepOutcome:
    return StepOutcome(claim.run_id, f"evt_{claim.run_id.split('_')[1]}", "h", 0, name, 0, 1,
                       1.0, 2.0, True, '"ok"', None, None)  # fmt: skip


async def test_the_step_records_of_a_batch_read_whether_they_were_written_once(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = await _three_claims(store)
    stale = Claim(c.run_id, "w1", c.token - 1)  # an earlier claim of c: over
    other = Claim(b.run_id, "w2", b.token)  # not this worker's
    reads = _counting_reads(monkeypatch)
    async with _Hold(store):
        writes = [
            asyncio.create_task(store.record_step(claim, _step(claim, name)))
            for claim, name in ((a, "one"), (stale, "one"), (b, "one"), (other, "two"), (c, "x"))
        ]
        await asyncio.sleep(0.01)
    assert await asyncio.gather(*writes) == [True, False, True, False, True]
    assert len(reads) == 2  # one read per worker whose claims the batch presented, not five
    for claim, names in ((a, ["one"]), (b, ["one"]), (c, ["x"])):
        steps = await store.load_steps(f"evt_{claim.run_id.split('_')[1]}", "h", 0)
        assert [s.name for s in steps] == names


async def test_the_endings_of_a_batch_read_whether_they_were_refused_once(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = await _three_claims(store)
    done = RunOutcome(a.run_id, "succeeded", result_json="1")
    assert await store.finish_run(b, RunOutcome(b.run_id, "succeeded", result_json="1"))
    reads = _counting_reads(monkeypatch)
    async with _Hold(store):
        endings = [
            asyncio.create_task(store.finish_run(claim, outcome))
            for claim, outcome in (
                (a, done),
                (Claim(c.run_id, "w2", c.token), RunOutcome(c.run_id, "succeeded")),  # not its
                (b, RunOutcome(b.run_id, "succeeded", result_json="1")),  # a retry: written
                (b, RunOutcome(b.run_id, "failed", error="late")),  # that claim is over
            )
        ]
        await asyncio.sleep(0.01)
    assert await asyncio.gather(*endings) == [True, False, True, False]
    # one read of the refusals for the four, then one look at each refused ending's run
    assert len(reads) == 1 + 3
    statuses = [(await store.get_run(c.run_id)) for c in (a, b, c)]
    assert [r.status for r in statuses if r is not None] == ["succeeded", "succeeded", "running"]


def test_the_positional_rows_of_a_step_and_an_ending_are_the_named_ones() -> None:
    """Every column a row's trigger reads has the named value; the others are the filler."""
    claim = Claim("run_1", "w1", 7)
    outcome = StepOutcome("run_1", "evt_1", "h", 2, "charge", 3, 4, 10.0, 11.0, False, None,
                          "E: x", "tb")  # fmt: skip
    named = {
        "kind": "step", "run_id": "run_1", "worker": "w1", "fence": 7, "at": 12.0,
        "event_id": "evt_1", "handler": "h", "generation": 2, "name": "charge", "position": 3,
        "number": 4, "started_at": 10.0, "ended_at": 11.0, "status": "failed", "result": None,
        "error": "E: x", "traceback": "tb",
    }  # fmt: skip
    assert _as_named(sqlite_store._step_row(claim, outcome, 12.0), named) == named
    ending = RunOutcome("run_1", "retrying", delay=5.0, result_json=None, error="E",
                        refund_attempt=True)  # fmt: skip
    named = {
        "kind": "finish", "run_id": "run_1", "worker": "w1", "fence": 7, "status": "retrying",
        "until": 17.0, "result": None, "error": "E", "refund": 1, "at": 12.0,
    }  # fmt: skip
    assert _as_named(sqlite_store._finish_row(claim, ending, 12.0), named) == named


def _as_named(row: tuple[Any, ...], named: dict[str, Any]) -> dict[str, Any]:
    """The row's named columns; every other one must be the filler."""
    values = dict(zip(OP_LOG_COLUMNS, row, strict=True))
    assert {c: v for c, v in values.items() if c not in named} == dict.fromkeys(
        set(OP_LOG_COLUMNS) - set(named), sqlite_store._
    )
    return {c: v for c, v in values.items() if c in named}


async def test_the_triggers_of_steps_and_endings_read_no_column_their_rows_fill_in(
    store: SQLiteStore,
) -> None:
    """A step's and an ending's op_log rows put a filler (not NULL) in the columns their
    trigger does not read: a migration that makes it read one must change the rows too."""
    with sqlite3.connect(store.path) as conn:
        triggers = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    claim = Claim("run_1", "w1", 7)
    # no real value is 0 here, so a 0 is the filler
    step = StepOutcome("run_1", "evt_1", "h", 5, "s", 6, 1, 1.0, 2.0, True, "1", None, None)
    ending = RunOutcome("run_1", "queued", delay=1.0, refund_attempt=True)
    for trigger, row in (
        ("op_step", sqlite_store._step_row(claim, step, 3.0)),
        ("op_finish", sqlite_store._finish_row(claim, ending, 3.0)),
    ):
        read = set(re.findall(r"NEW\.(\w+)", triggers[trigger]))
        filled = {c for c, v in zip(OP_LOG_COLUMNS, row, strict=True) if v == sqlite_store._}
        assert read and not read & filled, (trigger, read & filled)


async def test_each_step_record_of_a_batch_is_judged_at_its_own_time(tmp_path: Path) -> None:
    """One read serves the batch, but a record written just before its lease expired is
    written and one just after is refused, even side by side in one INSERT."""
    now = [1_000.0]
    store = SQLiteStore(f"sqlite:///{tmp_path / 'clock.db'}", clock=lambda: now[0])
    await store.open()
    await store.migrate()
    try:
        for n in range(2):
            await store.ingest(event(n, now[0], ("h",)), resume_failed=True)
        a, b = [item.claim("w1") for item in await store.claim_runs("w1", ["h"], 2, 30.0)]
        async with _Hold(store):
            now[0] = 1_029.5  # a's record: its lease (until 1,030) still runs
            before = asyncio.create_task(store.record_step(a, _step(a, "one")))
            await asyncio.sleep(0.005)
            now[0] = 1_030.5  # b's record: its lease ran out half a second ago
            after = asyncio.create_task(store.record_step(b, _step(b, "one")))
            await asyncio.sleep(0.005)
        assert [await before, await after] == [True, False]
        assert [s.name for s in await store.load_steps("evt_0", "h", 0)] == ["one"]
        assert await store.load_steps("evt_1", "h", 0) == []
    finally:
        await store.close()
