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

from hookline.errors import StoreError
from hookline.store import group_commit
from hookline.store import sqlite as sqlite_store
from hookline.store.base import Claim, EventFilter, NewEvent, NewRun, RunOutcome, StepOutcome
from hookline.store.group_commit import OP_LOG, OP_LOG_COLUMNS
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


@pytest.fixture
async def traced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SQLiteStore, list[str]]]:
    """A store on ``h.db`` and the statements its writer thread runs."""
    seen: list[str] = []
    real = group_commit.connect

    def traced(path: str, **kwargs: Any) -> sqlite3.Connection:
        conn = real(path, **kwargs)
        if threading.current_thread().name == "hookline-writer":
            conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(group_commit, "connect", traced)
    s = SQLiteStore(f"sqlite:///{tmp_path / 'h.db'}")
    await s.open()
    await s.migrate()
    yield s, seen
    await s.close()


def _stored(path: Path) -> dict[str, tuple[str, list[str]]]:
    """event id → (its status, the handlers of its runs), read from the file itself."""
    with sqlite3.connect(path) as db:
        events = {i: (status, []) for i, status in db.execute("SELECT id, status FROM events")}
        for event_id, handler in db.execute("SELECT event_id, handler FROM runs ORDER BY seq"):
            events[event_id][1].append(handler)
    return events


async def test_a_batch_of_webhooks_is_one_statement_that_holds_no_lock_between_two(
    traced: tuple[SQLiteStore, list[str]], tmp_path: Path
) -> None:
    # A Python transaction (BEGIN, an INSERT per event and per run, COMMIT) held SQLite's
    # write lock while the writer waited for the GIL between its statements, and stalled
    # every other process's commits meanwhile: a batch of webhooks is one INSERT now.
    s, statements = traced
    now = time.time()
    async with _Hold(s):
        statements.clear()
        batch = [
            asyncio.create_task(s.ingest(event(n, now, ("a", "b", "c")[: n % 4]), True))
            for n in range(12)
        ]
        await asyncio.sleep(0.05)  # every ingest is queued behind the held op
    results = await asyncio.gather(*batch)
    assert [(r.id, r.duplicate) for r in results] == [(f"evt_{n}", False) for n in range(12)]
    # after the held op's own end; each statement a trigger runs is traced as its INSERT
    after_hold = statements[statements.index("COMMIT") + 1 :]
    code = {"\n".join(line for line in sql.splitlines() if not line.startswith("--"))
            for sql in after_hold}  # fmt: skip
    writes = {sql for sql in code if not sql.startswith("SELECT")}
    assert len(writes) == 1 and writes.pop().startswith("INSERT INTO ingest_log")
    stored = _stored(tmp_path / "h.db")
    assert stored == {
        f"evt_{n}": ("queued" if n % 4 else "unhandled", ["a", "b", "c"][: n % 4])
        for n in range(12)
    }


async def test_webhooks_queued_behind_an_ordinary_op_are_not_written_in_its_transaction(
    traced: tuple[SQLiteStore, list[str]], tmp_path: Path
) -> None:
    s, statements = traced
    now = time.time()
    replayable = NewEvent("evt_r", "github", "d1", "t", now, {}, b"{}", (),
                          body_sha256="ab", replay_since=now - 60)  # fmt: skip
    async with _Hold(s):
        statements.clear()
        op = asyncio.create_task(s.ingest(replayable, True))  # an ordinary op
        await asyncio.sleep(0.02)
        batch = [asyncio.create_task(s.ingest(event(n, now, ("h",)), True)) for n in range(3)]
        await asyncio.sleep(0.05)
    await asyncio.gather(op, *batch)
    after_hold = statements[statements.index("COMMIT") + 1 :]
    begin, commit = after_hold.index("BEGIN IMMEDIATE"), after_hold.index("COMMIT")
    assert not any("ingest_log" in sql for sql in after_hold[begin:commit])
    assert len({sql for sql in after_hold if sql.startswith("INSERT INTO ingest_log")}) == 1
    assert set(_stored(tmp_path / "h.db")) == {"evt_r", "evt_0", "evt_1", "evt_2"}


async def test_a_webhook_is_stored_as_the_ordinary_transaction_stored_it(
    store: SQLiteStore, tmp_path: Path
) -> None:
    # The same event through ingest_log and through the ordinary op (a replay check that finds
    # no original): every column of the event and its runs the same value of the same type.
    now = 1_796_000_000.25
    body = bytes(range(256))

    def one(n: int, replay_since: float | None) -> NewEvent:
        runs = [NewRun(f"run_{n}_{k}", f"h{k}", 3 + k, "key" if k else None) for k in range(3)]
        return NewEvent(f"evt_{n}", "stripe", f"p{n}", "t", now, {"a": "b"}, body, runs,
                        body_sha256=None if replay_since is None else "cd",
                        replay_since=replay_since)  # fmt: skip

    await store.ingest(one(1, None), resume_failed=True)
    await store.ingest(one(2, replay_since=now - 60), resume_failed=True)
    with sqlite3.connect(tmp_path / "h.db") as db:
        columns = {
            table: [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            for table in ("events", "runs")
        }
        skip = {"seq", "id", "event_id", "provider_event_id", "body_sha256"}

        def typed(table: str, where: str) -> list[list[tuple[str, Any]]]:
            shown = [c for c in columns[table] if c not in skip]
            select = ", ".join(f"typeof({c}), {c}" for c in shown)
            found = db.execute(f"SELECT {select} FROM {table} WHERE {where} ORDER BY seq")
            return [list(zip(row[::2], row[1::2], strict=True)) for row in found]

        assert typed("events", "id = 'evt_1'") == typed("events", "id = 'evt_2'")
        new_runs = typed("runs", "event_id = 'evt_1'")
        assert len(new_runs) == 3 and new_runs == typed("runs", "event_id = 'evt_2'")


async def test_redeliveries_in_a_batch_of_webhooks_write_nothing_and_name_the_first(
    store: SQLiteStore, tmp_path: Path
) -> None:
    now = time.time()
    await store.ingest(event(1, now, ("h",)), resume_failed=False)

    def again(n: int, of: int) -> NewEvent:  # a redelivery: a new id, the provider's id of `of`
        return NewEvent(f"evt_again_{n}", "stripe", f"p{of}", "t", now, {}, b"{}",
                        [NewRun(f"run_again_{n}", "h", 3)])  # fmt: skip

    async with _Hold(store):
        batch = [
            asyncio.create_task(store.ingest(e, resume_failed=False))
            for e in (again(1, of=1), event(2, now, ("h",)), again(2, of=2), again(3, of=1))
        ]
        await asyncio.sleep(0.05)
    results = [(r.id, r.duplicate) for r in await asyncio.gather(*batch)]
    # the second of two copies in one batch is a redelivery of the first
    assert results == [("evt_1", True), ("evt_2", False), ("evt_2", True), ("evt_1", True)]
    assert _stored(tmp_path / "h.db") == {"evt_1": ("queued", ["h"]), "evt_2": ("queued", ["h"])}


async def test_a_webhook_the_database_refuses_fails_alone_in_its_batch(
    store: SQLiteStore, tmp_path: Path
) -> None:
    now = time.time()
    refused = NewEvent("evt_bad", "stripe", "p_bad", "t", now, {}, None, ())  # type: ignore[arg-type]
    async with _Hold(store):
        batch = [
            asyncio.create_task(store.ingest(e, resume_failed=True))
            for e in (event(1, now, ("h",)), refused, event(2, now))
        ]
        await asyncio.sleep(0.05)
    first, bad, last = await asyncio.gather(*batch, return_exceptions=True)
    assert isinstance(bad, StoreError) and "NOT NULL" in str(bad)
    assert not isinstance(first, BaseException) and not isinstance(last, BaseException)
    assert _stored(tmp_path / "h.db") == {"evt_1": ("queued", ["h"]), "evt_2": ("unhandled", [])}


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


async def test_the_migrated_file_drops_the_writers_pad_rows_and_refuses_unknown_kinds(
    store: SQLiteStore, tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "h.db") as db:
        for table in (OP_LOG, sqlite_store.INGEST_LOG):
            assert table.pad is not None
            db.execute(*table.statement([table.pad, table.pad, table.pad]))
            unknown = ("nonsense", *table.pad[1:])
            with pytest.raises(sqlite3.IntegrityError, match="unknown"):
                db.execute(*table.statement([unknown]))
        assert db.execute("SELECT count(*) FROM op_log").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM ingest_log").fetchone() == (0,)
