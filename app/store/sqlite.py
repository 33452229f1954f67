"""The SQLite store: embedded, WAL, durable acks through group commit.

Writes go through one ``GroupCommitWriter`` thread per process (one fsync per
batch); reads use an aiosqlite connection. Several processes (``serve`` and its
workers) share the file: SQLite's write lock serialises their batches, and
``BEGIN IMMEDIATE`` with a busy timeout makes them wait instead of failing.

The store's clock is this machine's ``time.time()``: every process sharing the file
runs on one machine, so they share one clock. Long writes (``prune``, bulk
redelivery) are cut into chunks of ``BULK_CHUNK`` events, one transaction each, so
that an ack queued behind them waits for one chunk at most.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from hookline.errors import RedeliveryInProgress, SchemaError, StoreError
from hookline.ids import new_id
from hookline.sql import migrations, queries
from hookline.store import jobs, records, schedules, sessions
from hookline.store.base import (
    ACTIVE_RUN_STATUSES,
    Claim,
    ClaimedRun,
    EnqueueResult,
    EventFilter,
    EventRecord,
    EventStatus,
    EventSummary,
    IngestResult,
    JobRecord,
    NewEvent,
    NewJob,
    NewTick,
    RedeliveryMode,
    RunOutcome,
    RunRecord,
    RunStatus,
    ScheduleState,
    StepOutcome,
    StepRecord,
    TickResult,
    WorkerInfo,
    WorkerStats,
)
from hookline.store.group_commit import GroupCommitWriter, OpRows, read_committed, storage_fault
from hookline.store.program import run_async, run_sync, statements

Q = queries("sqlite")
STATEMENTS = statements("sqlite")
log = logging.getLogger("hookline.store")
BULK_CHUNK = 50  # events per transaction of prune / bulk redelivery: ~4 ms (docs/benchmarks.md)
RETIRE_WORKERS_AFTER = 3600.0  # a worker silent this long has its counters folded
PROBE_BYTES = 65_536  # the readiness probe's write while a storage fault is in force
PROBE_SECONDS = 1.0  # the readiness probe's bound


def sqlite_path(url: str) -> str:
    """``sqlite:///./a.db`` → ``./a.db``; ``sqlite:////abs/a.db`` → ``/abs/a.db``."""
    return url.removeprefix("sqlite:///") or ":memory:"


def database_dir_problem(path: str) -> str | None:
    """Why the database file's directory cannot be used or made, or None.

    hookline creates the file's own directory (the data directory: ``./data`` of
    ``./data/hookline.db``) but never the directories above it, so a mistyped path is an
    error instead of a tree of new directories.
    """
    if path == ":memory:":
        return None
    directory = Path(path).parent
    if directory.is_dir():
        return None
    if directory.exists():
        return f"{directory} is not a directory"
    if not directory.parent.is_dir():
        return (
            f"the database directory {directory} does not exist and neither does "
            f"{directory.parent} (hookline creates only the database's own directory: "
            "check the path, or create its parent)"
        )
    return None


def _glob_to_sqlite_glob(pattern: str) -> str:
    """Only ``*`` is a wildcard for users; SQLite GLOB's ``?`` and ``[`` are made literal."""
    return pattern.replace("[", "[[]").replace("?", "[?]")


def _where(flt: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if flt.source:
        clauses.append("source = ?")
        args.append(flt.source)
    if flt.type_glob:
        clauses.append("type GLOB ?")  # case-sensitive, like handler matching
        args.append(_glob_to_sqlite_glob(flt.type_glob))
    if flt.status:
        clauses.append("status = ?")
        args.append(flt.status)
    if flt.since is not None:
        clauses.append("received_at >= ?")
        args.append(flt.since)
    if flt.until is not None:
        clauses.append("received_at < ?")
        args.append(flt.until)
    if flt.search:
        clauses.append("instr(provider_event_id, ?) > 0")
        args.append(flt.search)
    return (" AND ".join(clauses) or "1"), args


# -- write operations, run on the writer thread inside a transaction ---------------------------


def _insert_runs(conn: sqlite3.Connection, event_id: str, event: NewEvent) -> None:
    for run in event.runs:
        conn.execute(
            Q["insert_run"],
            (
                run.id,
                event_id,
                run.handler,
                0,
                run.max_attempts,
                event.received_at,
                run.concurrency_key,
                event.received_at,
                event.received_at,
            ),
        )


def _new_runs_from_latest(
    conn: sqlite3.Connection,
    event_id: str,
    mode: RedeliveryMode,
    only_if_all_failed: bool,
    now: float,
    refuse_in_progress: bool = False,
) -> list[str]:
    latest = conn.execute(Q["latest_runs_of_event"], (event_id,)).fetchall()
    if not latest:
        return []
    if only_if_all_failed and any(row[3] != "failed" for row in latest):
        return []
    active = [row[0] for row in latest if row[3] in ACTIVE_RUN_STATUSES]
    if active and refuse_in_progress:
        raise RedeliveryInProgress(active)
    run_ids: list[str] = []
    for run_id, handler, generation, status, max_attempts, key in latest:
        if status in ("queued", "running", "retrying"):
            run_ids.append(run_id)  # already on its way: never two runs of one handler at once
            continue
        new_run = new_id("run")
        next_generation = generation + 1 if mode == "fresh" else generation
        conn.execute(
            Q["insert_run"],
            (new_run, event_id, handler, next_generation, max_attempts, now, key, now, now),
        )
        run_ids.append(new_run)
    conn.execute(Q["refresh_event_status"], (event_id,))
    return run_ids


class SQLiteStore:
    dialect = "sqlite"

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        self.path = sqlite_path(url)
        self._clock = clock
        self._writer = GroupCommitWriter(self.path)
        self._reader: aiosqlite.Connection | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        problem = database_dir_problem(self.path)
        if problem is not None:
            raise StoreError(f"storage.url: {problem}")
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(exist_ok=True)  # only the data directory itself
        try:
            self._writer.start()
        except sqlite3.DatabaseError as exc:  # random bytes, or a damaged header
            raise SchemaError(
                f"{self.path} is not a SQLite database hookline can open ({exc}); "
                "point [storage] url at another file, or restore this one from a backup"
            ) from None
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout = 30000")
        await self._reader.execute("PRAGMA query_only = ON")

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        self._writer.stop()
        log.info(
            "store closed",
            extra={"write_batches": self._writer.batches, "write_ops": self._writer.ops},
        )

    async def _all(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Execute and fetch in one call on the reader thread: a statement never stays
        open across an ``await``, so every read sees everything committed before it."""
        return list(await self._db.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    @property
    def _db(self) -> aiosqlite.Connection:
        assert self._reader is not None, "store is not open"
        return self._reader

    async def migrate(self) -> int:
        known = migrations("sqlite")

        def apply(conn: sqlite3.Connection) -> int:
            _refuse_foreign(conn, self.path, known[-1][0])
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            current = conn.execute(Q["schema_version"]).fetchone()[0]
            for version, name, sql in known:
                if version <= current:
                    continue
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
                current = version
            return int(current)

        return await self._writer.run(apply)

    async def check_ready(self) -> None:
        if (gone := self._writer.file_problem()) is not None:
            raise StoreError(gone)
        expected = migrations("sqlite")[-1][0]
        try:
            row = await asyncio.wait_for(self._one(Q["schema_version"]), PROBE_SECONDS)
        except sqlite3.OperationalError as exc:
            raise SchemaError(
                f"schema not migrated ({exc}): run `hookline migrate` first"
            ) from None
        except TimeoutError:
            raise StoreError("the database did not answer in time") from None
        if row is None or row[0] != expected:
            raise SchemaError(f"schema version {row[0] if row else 0}, expected {expected}")
        if self._writer.fault is not None:
            await self._probe_write()

    async def _probe_write(self) -> None:
        """While the last write failed on the storage itself (a full disk), ready means a
        write of some size commits again; it also clears the fault for everyone."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(Q["storage_probe"], {"size": PROBE_BYTES})

        try:
            await asyncio.wait_for(self._writer.run(op), PROBE_SECONDS)
        except TimeoutError:
            raise StoreError("a probe write did not commit in time") from None
        except StoreError as exc:
            if storage_fault(exc):
                raise StoreError(f"the storage cannot be written ({exc})") from None
            raise

    # -- dashboard sessions -----------------------------------------------------------------

    async def create_session(self, id_hash: str, token_hash: str, max_age: float) -> None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            run_sync(sessions.create(id_hash, token_hash, max_age, now), conn, STATEMENTS)

        await self._writer.run(op)

    async def session_valid(self, id_hash: str, token_hash: str) -> bool:
        program = sessions.valid(id_hash, token_hash, self._clock())
        return await run_async(program, self._all, STATEMENTS)

    async def delete_session(self, id_hash: str) -> None:
        await self._writer.run(lambda conn: run_sync(sessions.delete(id_hash), conn, STATEMENTS))

    async def forget_sessions_of_other_tokens(self, token_hash: str) -> None:
        program = sessions.forget_other_tokens
        await self._writer.run(lambda conn: run_sync(program(token_hash), conn, STATEMENTS))

    # -- ingestion --------------------------------------------------------------------------

    async def ingest(self, event: NewEvent, resume_failed: bool) -> IngestResult:
        headers_json = orjson.dumps(event.headers).decode()
        status = "queued" if event.runs else "unhandled"

        def op(conn: sqlite3.Connection) -> IngestResult:
            # a resend under a stored id is that event (a duplicate, maybe resumed), even
            # when the same body came later under another id: the query skips stored ids
            if event.replay_since is not None:
                key = (event.source, event.provider_event_id)
                original = conn.execute(
                    Q["replay_original"],
                    (event.source, event.body_sha256, event.replay_since, key[1], *key),
                ).fetchone()
                if original is not None:
                    return IngestResult(original[0], duplicate=True, replay_of=original[1])
            cur = conn.execute(
                Q["insert_event"],
                (
                    event.id,
                    event.source,
                    event.provider_event_id,
                    event.type,
                    status,
                    event.received_at,
                    headers_json,
                    event.body,
                    event.body_sha256,
                ),
            )
            if cur.rowcount == 1:
                _insert_runs(conn, event.id, event)
                return IngestResult(event.id, duplicate=False)
            existing = conn.execute(
                Q["event_id_by_key"], (event.source, event.provider_event_id)
            ).fetchone()[0]
            resumed: list[str] = []
            if resume_failed:
                resumed = _new_runs_from_latest(
                    conn, existing, "resume", only_if_all_failed=True, now=event.received_at
                )
            return IngestResult(existing, duplicate=True, resumed_run_ids=tuple(resumed))

        return await self._writer.run(op)

    # -- jobs -------------------------------------------------------------------------------

    async def enqueue_job(self, job: NewJob) -> EnqueueResult:
        # built here, not on the writer thread; due by the store's clock (hookline.store.jobs)
        insert = jobs.prepare(job, self._clock())
        columns = tuple(insert.params[name] for name in jobs.INSERT_COLUMNS)
        due: float = insert.params["due_at"]
        now: float = insert.params["clock"]

        def op(conn: sqlite3.Connection) -> EnqueueResult:
            # The common case, a new key, in two positional statements like a webhook's
            # (the writer thread is the SQLite ingest's bottleneck); a taken key runs the
            # program, which decides replayed / resumed / key_reused.
            if conn.execute(Q["job_insert_positional"], columns).rowcount == 1:
                for run in job.runs:
                    conn.execute(
                        Q["insert_run"],
                        (run.id, job.id, run.handler, 0, run.max_attempts, due,
                         run.concurrency_key, now, now),
                    )  # fmt: skip
                status: EventStatus = "queued" if job.runs else "unhandled"
                return EnqueueResult(job.id, "created", status, tuple(r.id for r in job.runs))
            return run_sync(jobs.enqueue(job, insert), conn, STATEMENTS)

        return await self._writer.run(op)

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await run_async(jobs.get(job_id), self._all, STATEMENTS)

    # -- schedules (their callers read the store's clock: ``now()``) -------------------------

    async def record_ticks(
        self, schedule: str, ticks: Sequence[NewTick], now: float
    ) -> list[TickResult]:
        def op(conn: sqlite3.Connection) -> list[TickResult]:
            return run_sync(schedules.record(schedule, ticks, now), conn, STATEMENTS)

        return await self._writer.run(op)

    async def trigger_schedule(self, schedule: str, job: NewJob) -> EnqueueResult:
        def op(conn: sqlite3.Connection) -> EnqueueResult:
            return run_sync(schedules.trigger(schedule, job), conn, STATEMENTS)

        return await self._writer.run(op)

    async def set_schedule_paused(self, schedule: str, paused: bool, now: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            run_sync(schedules.set_paused(schedule, paused, now), conn, STATEMENTS)

        await self._writer.run(op)

    async def schedule_state(self, schedule: str, ticks: int = 10) -> ScheduleState:
        return await run_async(schedules.state(schedule, ticks), self._all, STATEMENTS)

    # -- reading ----------------------------------------------------------------------------

    async def list_events(
        self, flt: EventFilter, limit: int, before_seq: int | None
    ) -> list[EventSummary]:
        where, args = _where(flt)
        if before_seq is not None:
            where += " AND seq < ?"
            args.append(before_seq)
        sql = (
            "SELECT id, source, provider_event_id, type, status, received_at, seq FROM events "
            f"WHERE {where} ORDER BY seq DESC LIMIT ?"
        )
        rows = await self._all(sql, [*args, limit])
        return [EventSummary(*row) for row in rows]

    async def get_event(self, event_id: str) -> EventRecord | None:
        row = await self._one(Q["event_by_id"], (event_id,))
        if row is None:
            return None
        summary = EventSummary(*row[:7])
        run_rows = await self._all(Q["runs_of_event"], (event_id,))
        runs = [await self._with_steps(records.run_from_row(r)) for r in run_rows]
        return EventRecord(summary, json.loads(row[7]), bytes(row[8]), runs)

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._one(Q["run_by_id"], (run_id,))
        return None if row is None else await self._with_steps(records.run_from_row(row))

    async def _with_steps(self, run: RunRecord) -> RunRecord:
        steps = await self.load_steps(run.event_id, run.handler, run.generation, attempts=True)
        run.steps.extend(steps)
        return run

    async def load_steps(
        self, event_id: str, handler: str, generation: int, attempts: bool = False
    ) -> list[StepRecord]:
        key = (event_id, handler, generation)
        step_rows = list(await self._all(Q["steps_of"], key))
        attempt_rows: list[Any] = []
        if attempts:
            attempt_rows = list(await self._all(Q["attempts_of"], key))
        return records.steps_from_rows(step_rows, attempt_rows)

    # -- pipeline ---------------------------------------------------------------------------

    async def now(self) -> float:
        return self._clock()

    async def has_due_runs(self, handlers: Sequence[str]) -> bool:
        row = await self._one(Q["any_due"], (self._clock(), json.dumps(list(handlers))))
        return bool(row and row[0])

    async def claim_runs(
        self, worker_id: str, handlers: Sequence[str], limit: int, lease_seconds: float
    ) -> list[ClaimedRun]:
        claim_id = new_id("clm")
        now = self._clock()
        claim = {"kind": "claim", "name": claim_id, "worker": worker_id, "at": now,
                 "until": now + lease_seconds, "n": limit,
                 "handlers": json.dumps(list(handlers))}  # fmt: skip
        # what the claim took, read back on the writer's connection right after its commit
        rows = await self._writer.apply(
            OpRows(
                claim,
                then=lambda conn: read_committed(conn, Q["claimed_by"], (claim_id, worker_id)),
            )
        )
        return [records.claimed_from_row(row) for row in rows]

    async def heartbeat(
        self, claims: Sequence[Claim], lease_seconds: float
    ) -> dict[str, RunStatus]:
        if not claims:
            return {}
        now = self._clock()
        until = now + lease_seconds
        held: dict[str, RunStatus] = await self._writer.apply(
            OpRows(
                *(
                    {
                        "kind": "lease",
                        "run_id": c.run_id,
                        "worker": c.worker_id,
                        "fence": c.token,
                        "at": now,
                        "until": until,
                    }
                    for c in claims
                ),
                then=lambda conn: _held(conn, claims, now),
            )
        )
        return held

    async def record_step(self, claim: Claim, outcome: StepOutcome) -> bool:
        now = self._clock()
        # A claim is held from its claim until it ends, never again after: held after the
        # commit means it was held when the row was applied (and an ended claim wrote
        # nothing). One read for every step record of the batch (``_steps_written``).
        rows = OpRows.positional(
            _step_row(claim, outcome, now), then_all=_steps_written, then_arg=(claim, now)
        )
        written: bool = await self._writer.apply(rows)
        return written

    async def finish_run(self, claim: Claim, outcome: RunOutcome) -> bool:
        now = self._clock()
        rows = OpRows.positional(
            _finish_row(claim, outcome, now),
            then_all=_finishes_kept,
            then_arg=(claim, now, outcome.status),
        )
        written: bool = await self._writer.apply(rows)
        return written

    async def redeliver(self, event_id: str, mode: RedeliveryMode) -> list[str] | None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[str] | None:
            if conn.execute(Q["event_by_id"], (event_id,)).fetchone() is None:
                return None
            fresh = mode == "fresh"
            return _new_runs_from_latest(conn, event_id, mode, False, now, refuse_in_progress=fresh)

        return await self._writer.run(op)

    async def redeliver_matching(self, flt: EventFilter, mode: RedeliveryMode) -> int:
        where, args = _where(flt)
        ids = [row[0] for row in await self._all(f"SELECT id FROM events WHERE {where}", args)]
        for start in range(0, len(ids), BULK_CHUNK):
            chunk = ids[start : start + BULK_CHUNK]
            now = self._clock()

            def op(conn: sqlite3.Connection, chunk: list[str] = chunk, now: float = now) -> None:
                for event_id in chunk:  # one pruned meanwhile has no runs: nothing happens
                    _new_runs_from_latest(conn, event_id, mode, only_if_all_failed=False, now=now)

            await self._writer.run(op)
        return len(ids)

    async def cancel_run(self, run_id: str) -> RunRecord | None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(Q["event_of_run"], (run_id,)).fetchone()
            if row is None:
                return False
            conn.execute(Q["cancel_run"], (now, run_id))  # a trigger refreshes the event
            return True

        if not await self._writer.run(op):
            return None
        return await self.get_run(run_id)

    async def prune(self, older_than: float, include_failed: bool) -> int:
        params = (older_than, int(include_failed), BULK_CHUNK)

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(Q["prune_events"], params).rowcount

        total = 0
        while (deleted := await self._writer.run(op)) > 0:
            total += deleted
        retire_before = self._clock() - RETIRE_WORKERS_AFTER
        await self._writer.run(lambda conn: _retire_workers(conn, retire_before))
        return total

    async def queue_depth(self, cap: int) -> int:
        row = await self._one(Q["queue_depth"], (cap,))
        return int(row[0]) if row else 0

    async def run_counts(self) -> dict[str, int]:
        return {status: int(count) for status, count in await self._all(Q["run_counts"])}

    async def worker_heartbeat(self, worker: WorkerInfo, stats: WorkerStats) -> None:
        await self._writer.apply(
            OpRows(
                {
                    "kind": "worker_up",
                    "worker": worker.id,
                    "host": worker.host,
                    "pid": worker.pid,
                    "started_at": worker.started_at,
                    "at": self._clock(),
                    "stats": stats.to_json(),
                }
            )
        )

    async def worker_stopped(self, worker_id: str, stats: WorkerStats) -> None:
        row = {"kind": "worker_down", "worker": worker_id, "stats": stats.to_json()}
        await self._writer.apply(OpRows(row))

    async def live_workers(self, within_seconds: float = 30.0) -> int:
        row = await self._one(Q["live_workers"], (self._clock() - within_seconds,))
        return int(row[0]) if row else 0

    async def worker_stats(self) -> WorkerStats:
        total = WorkerStats()
        for (stats,) in await self._all(Q["worker_stats"]):
            total.add(WorkerStats.from_json(stats))
        return total


def _held(conn: sqlite3.Connection, claims: Sequence[Claim], at: float) -> dict[str, RunStatus]:
    """Of ``claims``, those still held at ``at``, with their run's status (on the writer's
    connection, right after the write that presented them)."""
    held: dict[str, RunStatus] = {}
    by_worker: dict[str, list[list[Any]]] = {}
    for c in claims:
        by_worker.setdefault(c.worker_id, []).append([c.run_id, c.token])
    for worker, pairs in by_worker.items():
        for run_id, status in read_committed(conn, Q["held"], (json.dumps(pairs), worker, at)):
            held[run_id] = status
    return held


#: The value of a column that the trigger of a row's kind never reads (an op_log row is
#: never stored). Not None: sqlite3 binds None only after looking for an adapter, which costs
#: a raised and cleared AttributeError (~0.3 µs a column); an int is bound at once.
_ = 0


def _step_row(claim: Claim, o: StepOutcome, now: float) -> tuple[Any, ...]:
    """The ``op_log`` row of a step's attempt, in ``OP_LOG_COLUMNS`` order (op_step reads
    every column up to ``at``, and ``fence``)."""
    status = "succeeded" if o.succeeded else "failed"
    # fmt: off
    return ("step", claim.run_id, o.event_id, o.handler, o.generation, o.name, o.position,
            o.number, o.started_at, o.ended_at, status, o.result_json, o.error, o.traceback,
            claim.worker_id, now, _, _, _, _, _, claim.token, _, _)
    # fmt: on


def _finish_row(claim: Claim, o: RunOutcome, now: float) -> tuple[Any, ...]:
    """The ``op_log`` row of a run's ending, in ``OP_LOG_COLUMNS`` order (op_finish reads
    ``run_id``, ``status``, ``result``, ``error``, ``worker``, ``at``, ``until``, ``refund``
    and ``fence``)."""
    # fmt: off
    return ("finish", claim.run_id, _, _, _, _, _, _, _, _, o.status,
            o.result_json, o.error, _, claim.worker_id, now, now + o.delay, _,
            int(o.refund_attempt), _, _, claim.token, _, _)
    # fmt: on


def _steps_written(conn: sqlite3.Connection, writes: list[tuple[Claim, float]]) -> list[bool]:
    """Whether each step record (claim, time of its write) was written: whether its claim
    is still held after the commit, read once for a whole batch of them."""
    by_worker: dict[str, list[int]] = {}
    for i, (claim, _at) in enumerate(writes):
        by_worker.setdefault(claim.worker_id, []).append(i)
    written = [True] * len(writes)
    for worker, indices in by_worker.items():
        pairs = json.dumps([[writes[i][0].run_id, writes[i][0].token] for i in indices])
        latest = max(writes[i][1] for i in indices)
        for key, expires in read_committed(conn, Q["claims_in_doubt"], (pairs, worker, latest)):
            i = indices[key]
            written[i] = expires is not None and expires >= writes[i][1]
    return written


def _finishes_kept(
    conn: sqlite3.Connection, endings: list[tuple[Claim, float, RunStatus]]
) -> list[bool]:
    """Whether each ending (claim, time of its write, status) was written (or, retried, had
    been by its first try): no refusal noted for it, read once for a whole batch."""
    pairs = json.dumps([[claim.run_id, claim.token] for claim, _at, _status in endings])
    refused = {
        key for key, at in read_committed(conn, Q["refusals_of"], (pairs,)) if at == endings[key][1]
    }
    kept = [True] * len(endings)
    for i in refused:
        claim, _at, status = endings[i]
        already = (claim.run_id, claim.token, status)
        kept[i] = bool(read_committed(conn, Q["already_finished"], already))
    return kept


def _retire_workers(conn: sqlite3.Connection, before: float) -> None:
    """Fold the counters of workers silent since ``before`` into one row, so the workers
    table stays small and the totals of /metrics never go down."""
    stale = conn.execute(Q["stale_workers"], (before,)).fetchall()
    conn.execute(Q["prune_refusals"], (before,))
    if not stale:
        return
    retired = conn.execute("SELECT stats FROM workers WHERE id = 'retired'").fetchone()
    total = WorkerStats.from_json(retired[0] if retired else None)
    for worker_id, stats in stale:
        total.add(WorkerStats.from_json(stats))
        conn.execute(Q["delete_worker"], (worker_id,))
    conn.execute(Q["upsert_retired"], (total.to_json(),))


MIGRATIONS_COLUMNS = ["version", "name", "applied_at"]


def _refuse_foreign(conn: sqlite3.Connection, path: str, latest: int) -> None:
    """Refuse a file that holds another application's tables, or a schema newer than this
    code knows: migrating either would damage it. An empty file is a new database."""
    tables = sorted(
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith("sqlite_")
    )
    if not tables:
        return
    if "schema_migrations" not in tables:
        shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
        raise SchemaError(
            f"{path} is not a hookline database: it has tables ({shown}) and no "
            "schema_migrations. Point [storage] url at a new file (hookline creates it)"
        )
    columns = [row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")]
    if columns != MIGRATIONS_COLUMNS:
        raise SchemaError(
            f"{path} is not a hookline database: its schema_migrations table has the "
            f"columns {columns}, not {MIGRATIONS_COLUMNS}"
        )
    current = conn.execute(Q["schema_version"]).fetchone()[0]
    if current > latest:
        raise SchemaError(newer_schema(current, latest))


def newer_schema(found: int, latest: int) -> str:
    return (
        f"the database schema is at version {found}, newer than this hookline knows "
        f"({latest}): run the hookline version that migrated it, or a newer one"
    )


def _statements(sql: str) -> list[str]:
    """Split a migration into statements; a trigger's body keeps its inner ';'.

    Our migrations put no '--' inside string literals, so comments can be cut first.
    """
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    statements: list[str] = []
    pending = ""
    for chunk in code.split(";"):
        pending += chunk + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements
