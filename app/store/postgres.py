"""The PostgreSQL store: any number of processes on any number of machines share one database.

Behaviour matches ``SQLiteStore`` (the reference); what differs is how concurrency is made
safe without SQLite's single writer:

- Connections come from a ``psycopg_pool.AsyncConnectionPool`` in autocommit mode; every
  write is one explicit transaction on its own connection, so concurrent ingests commit (and
  fsync) in parallel — PostgreSQL groups their WAL flushes itself.
- Claims lock rows with ``FOR UPDATE SKIP LOCKED``: two claimers never take one run. Runs with
  a concurrency key also take a transaction-level advisory lock on their (handler, key) and
  re-check with a fresh snapshot, so two claimers cannot start two runs of one key at once.
  A claim is two round trips (``claim_runs``: one statement locks, leases and reads; then its
  events' lock and status, and COMMIT); keyed runs add the lock and re-check between them.
- Every transaction that changes the status of runs locks their events (``FOR NO KEY
  UPDATE``, in id order) before ``refresh_event_status``; the refresh then reads committed
  state and the last writer wins with the right answer. (A claim, which only makes runs
  ``running``, the status that outranks all others, sets ``running`` after the lock on the
  events whose claimed run is the newest of its handler: ``claimed_events_running``.)
  A duplicate ingest that may resume failed runs locks its event first, so two resends
  cannot both resume it. Lock order is run rows → key locks → event rows: no deadlock
  cycle; a deadlock all the same is retried.
- Whatever makes a run claimable now (an ingest or redelivery with runs, a release, the end
  or cancel of a keyed run) notifies the channel of the run's handler in its transaction
  (``channel(handler)``); ``wait_for_work`` listens to the channels of the handlers a worker
  has loaded (one LISTEN connection per store, opened on first use), so a run wakes only
  the workers that can take it.
- The database's clock is the only clock (``hookline_now()``, migration 0004): leases, due
  times and retry times are computed in SQL, never from a worker's ``time.time()``.
- Claims are fenced: a write presents its claim's token and is refused once the claim is
  over (``record_step`` locks the run row ``FOR SHARE`` while it checks and writes).
- A worker's step records and run endings are group-committed across its concurrent runs
  (``hookline.store.pg_batch``): both kinds in one transaction (one round trip) per batch,
  answered only after its commit.
- ``pool_size`` and ``statement_timeout`` come from ``[storage]``; the timeout is lifted
  while migrating.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, AsyncCursor, errors, pq, sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

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
from hookline.store.pg_batch import WriteBatcher
from hookline.store.pg_ingest import IngestBatcher
from hookline.store.program import Row, run_async, statements

Q = queries("postgres")
STATEMENTS = statements("postgres")
INGEST_BATCHES_IN_FLIGHT = 2  # per process (hookline.store.pg_ingest)
# Per process (step records and endings; hookline.store.pg_batch). One: what queues during a
# batch's round trip goes in the next, so batches are larger and commits fewer. Measured
# with 2 workers: 0.31 commits per run instead of 0.56, and 40 % less CPU per run in the
# workers and the server (docs/benchmarks.md).
WRITE_BATCHES_IN_FLIGHT = 1
PRUNE_CHUNK = 1000  # events per transaction of prune
RETIRE_WORKERS_AFTER = 3600.0  # a worker silent this long has its counters folded
_LOCK_SPACE_MIGRATE = 0x686F6F6B  # 'hook': advisory lock (space, 0) while migrating
_LOCK_SPACE_KEYS = _LOCK_SPACE_MIGRATE + 1  # (space, hashtext(handler, key)) while claiming
_MAX_TRIES = 5
# How long a caller waits for a pooled connection: while the database answers, long enough
# to ride out a burst; once a connection has failed, short, so that requests during an
# outage get their 503 at once instead of each waiting (the pool reconnects meanwhile).
ACQUIRE_SECONDS = 5.0
ACQUIRE_WHILE_DOWN_SECONDS = 0.5
PROBE_SECONDS = 1.0  # the readiness probe's bound, connection included
_RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure)

Conn = AsyncConnection[TupleRow]
Params = Mapping[str, Any]
T = TypeVar("T")
log = logging.getLogger("hookline.store")


def channel(handler: str) -> str:
    """The NOTIFY channel of one handler: a valid identifier whatever the handler's name."""
    return "hookline_" + hashlib.sha256(handler.encode()).hexdigest()[:32]


async def _notify(conn: Conn, handlers: Sequence[str]) -> None:
    if handlers:
        await conn.execute(Q["notify_runs"], {"channels": sorted({channel(h) for h in handlers})})


def _glob_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _filter_params(flt: EventFilter) -> dict[str, Any]:
    """The parameters of the ``list_events`` filter; None (or empty) disables a clause."""
    return {
        "source": flt.source or None,
        "type_like": _glob_to_like(flt.type_glob) if flt.type_glob else None,
        "status": flt.status or None,
        "since": flt.since,
        "until": flt.until,
        "search": flt.search or None,
    }


# The hot path's statements (claims, step records, endings, heartbeats): prepared, and each
# run with its generic plan, made once per connection and kept, where they used to be parsed
# and planned at every execution (planning cost more than running them: 180 µs of the
# server's CPU per run of the 2-step bench). Each runs only in a transaction whose first
# statement is hot_plans, which forces generic plans and disables sequential scans: a
# generic plan made while the tables were small then still probes the indexes (one made with
# sequential scans allowed picked them on empty tables, and a 20,000-event bench read 470
# rows of `runs` per run that way). A statement that other transactions also run has a name
# of its own here (lock_claimed_events beside lock_events), so no plan made outside these
# settings is ever reused by them.
HOT = frozenset(
    {
        "claim_runs",
        "keyed_runs_still_free",
        "lease_runs",
        "claimed_runs_with_events",
        "lock_claimed_events",
        "claimed_events_running",
        "heartbeat",
        "lock_runs",
        "record_steps",
        "finish_runs",
        "lock_events_of_runs",
        "refresh_events_of_runs",
    }
)


async def _execute(conn: Conn, name: str, params: Params | None = None) -> AsyncCursor[TupleRow]:
    return await conn.execute(Q[name], params, prepare=True if name in HOT else None)


async def _all(conn: Conn, name: str, params: Params | None = None) -> list[TupleRow]:
    cur = await _execute(conn, name, params)
    return await cur.fetchall()


async def _one(conn: Conn, name: str, params: Params | None = None) -> TupleRow | None:
    cur = await conn.execute(Q[name], params)
    return await cur.fetchone()


def _connection_lost(exc: psycopg.Error) -> bool:
    """The server went away or could not be reached (not a query's own failure)."""
    if isinstance(exc, errors.QueryCanceled):  # a statement timeout: the server is there
        return False
    state = exc.sqlstate or ""
    return isinstance(exc, psycopg.OperationalError) or state.startswith(("08", "57P"))


HOOKLINE_TABLES = (
    "events", "runs", "steps", "step_attempts", "workers", "schedule_state", "schedule_ticks",
    "admin_sessions",
)  # fmt: skip


async def _refuse_foreign(conn: Conn, latest: int) -> None:
    """Refuse a database where tables of hookline's names exist without its
    schema_migrations (another application's), or whose schema is newer than this code.
    Other tables beside hookline's are left alone: a PostgreSQL database may be shared."""
    row = await _one(conn, "schema_migrations_exists")
    if row is None or row[0] is None:
        clashes = await _all(conn, "tables_named", {"names": list(HOOKLINE_TABLES)})
        if clashes:
            names = ", ".join(sorted(r[0] for r in clashes))
            raise SchemaError(
                f"this database is not hookline's: it has tables named like hookline's "
                f"({names}) and no schema_migrations. Use another database (or schema)"
            )
        return
    version = await _one(conn, "schema_version")
    current = int(version[0]) if version else 0
    if current > latest:
        raise SchemaError(
            f"the database schema is at version {current}, newer than this hookline knows "
            f"({latest}): run the hookline version that migrated it, or a newer one"
        )


async def _configure(conn: Conn) -> None:
    """Every pooled connection: an acknowledged commit is on disk (spec §3: durable acks).

    Only ``off`` is raised to ``on``; a stronger server setting (``remote_apply``...) stays.
    """
    row = await _one(conn, "synchronous_commit")
    if row is not None and row[0] == "off":
        await conn.execute(Q["synchronous_commit_on"])


def _executor(conn: Conn) -> Callable[[str, Params], Awaitable[list[Row]]]:
    """``execute(sql, params) -> rows`` on one connection, for ``program.run_async``."""

    async def execute(sql: str, params: Params) -> list[Row]:
        cur = await conn.execute(sql, params)
        return list(await cur.fetchall()) if cur.description is not None else []

    return execute


async def _refresh(conn: Conn, event_ids: Sequence[str]) -> None:
    """Lock the events (id order), then derive their status from committed run state."""
    ids = sorted(set(event_ids))
    await conn.execute(Q["lock_events"], {"ids": ids})
    await conn.execute(Q["refresh_event_status"], {"ids": ids})


async def _new_runs_from_latest(
    conn: Conn,
    event_id: str,
    mode: RedeliveryMode,
    only_if_all_failed: bool,
    refuse_in_progress: bool = False,
) -> list[str]:
    """The caller holds the event's row lock (so two redeliveries cannot both resume)."""
    latest = await _all(conn, "latest_runs_of_event", {"event_id": event_id})
    if not latest:
        return []
    if only_if_all_failed and any(row[3] != "failed" for row in latest):
        return []
    active = [row[0] for row in latest if row[3] in ACTIVE_RUN_STATUSES]
    if active and refuse_in_progress:
        raise RedeliveryInProgress(active)
    run_ids: list[str] = []
    new_runs: list[dict[str, Any]] = []
    for run_id, handler, generation, status, max_attempts, key in latest:
        if status in ("queued", "running", "retrying"):
            run_ids.append(run_id)  # already on its way: never two runs of one handler at once
            continue
        new_run = new_id("run")
        new_runs.append(
            {
                "id": new_run,
                "event_id": event_id,
                "handler": handler,
                "generation": generation + 1 if mode == "fresh" else generation,
                "max_attempts": max_attempts,
                "concurrency_key": key,
            }
        )
        run_ids.append(new_run)
    if new_runs:
        async with conn.cursor() as cur:
            await cur.executemany(Q["insert_run"], new_runs)
        await _notify(conn, [r["handler"] for r in new_runs])
    await _refresh(conn, [event_id])
    return run_ids


@contextlib.asynccontextmanager
async def _pipelined_transaction(conn: Conn) -> AsyncIterator[None]:
    """One transaction of the hot path in pipeline mode whose BEGIN and COMMIT travel with
    its statements; hot_plans right after BEGIN (see HOT).

    ``conn.transaction()`` in a pipeline syncs after BEGIN and before COMMIT (two round
    trips of their own); here BEGIN goes out with the first statements and COMMIT with the
    last, so a transaction whose statements need one answer in between is two round trips.
    On an error the transaction is rolled back before the connection goes back to the pool.
    """
    try:
        async with conn.pipeline():
            await conn.execute(Q["begin"])
            await conn.execute(Q["hot_plans"], prepare=True)
            yield
            await conn.execute(Q["commit"])
    except BaseException:
        if not conn.closed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                await conn.execute(Q["rollback"])
        raise


async def _claim_keyed(
    conn: Conn,
    worker_id: str,
    lease_seconds: float,
    now: float,
    keyed: Sequence[tuple[str, str, str]],
) -> list[ClaimedRun]:
    """The due runs with a concurrency key that ``claim_runs`` locked: take turns per
    (handler, key), then re-check with a fresh snapshot (a run of the key that another
    claimer started meanwhile is visible now) and lease those still free."""
    for handler, key in sorted({(h, k) for _, h, k in keyed}):
        await conn.execute(
            Q["advisory_xact_lock"], {"space": _LOCK_SPACE_KEYS, "handler": handler, "key": key}
        )
    ids = [run_id for run_id, _, _ in keyed]
    free = {row[0] for row in await _all(conn, "keyed_runs_still_free", {"ids": ids, "now": now})}
    ids = [run_id for run_id in ids if run_id in free]
    if not ids:
        return []
    await _execute(
        conn, "lease_runs", {"worker_id": worker_id, "lease": lease_seconds, "now": now, "ids": ids}
    )
    rows = {row[0]: row for row in await _all(conn, "claimed_runs_with_events", {"ids": ids})}
    return [records.claimed_from_row(rows[run_id]) for run_id in ids]


async def _load_steps(
    conn: Conn, event_id: str, handler: str, generation: int, attempts: bool
) -> list[StepRecord]:
    key = {"event_id": event_id, "handler": handler, "generation": generation}
    step_rows = await _all(conn, "steps_of", key)
    attempt_rows = await _all(conn, "attempts_of", key) if attempts else []
    return records.steps_from_rows(step_rows, attempt_rows)


async def _with_steps(conn: Conn, run: RunRecord) -> RunRecord:
    run.steps.extend(await _load_steps(conn, run.event_id, run.handler, run.generation, True))
    return run


Write = tuple[Claim, StepOutcome | RunOutcome]  # a worker's write: a step record, an ending


def _write_key(item: Write) -> Hashable:
    """No two writes of one memo row (or of one run's ending) in a batch."""
    claim, outcome = item
    if isinstance(outcome, StepOutcome):
        return ("step", outcome.event_id, outcome.handler, outcome.generation, outcome.name)
    return ("ending", claim.run_id)


def _steps_params(items: Sequence[tuple[Claim, StepOutcome]]) -> dict[str, Any]:
    """The parameters of record_steps: arrays, one element per attempt."""
    return {
        "run_ids": [c.run_id for c, _ in items],
        "fences": [c.token for c, _ in items],
        "worker_ids": [c.worker_id for c, _ in items],
        "event_ids": [o.event_id for _, o in items],
        "handlers": [o.handler for _, o in items],
        "generations": [o.generation for _, o in items],
        "names": [o.name for _, o in items],
        "positions": [o.position for _, o in items],
        "numbers": [o.number for _, o in items],
        # float(): a list that mixes ints and floats cannot be sent as one array
        "started_at": [float(o.started_at) for _, o in items],
        "ended_at": [float(o.ended_at) for _, o in items],
        "outcomes": ["succeeded" if o.succeeded else "failed" for _, o in items],
        "errors": [o.error for _, o in items],
        "tracebacks": [o.traceback for _, o in items],
        "results": [o.result_json for _, o in items],
    }


def _endings_params(items: Sequence[tuple[Claim, RunOutcome]]) -> dict[str, Any]:
    """The parameters of finish_runs: arrays, one element per ending."""
    return {
        "ids": [c.run_id for c, _ in items],
        "fences": [c.token for c, _ in items],
        "worker_ids": [c.worker_id for c, _ in items],
        "statuses": [o.status for _, o in items],
        "delays": [float(o.delay) for _, o in items],  # ctx.sleep(5) gives an int
        "results": [o.result_json for _, o in items],
        "errors": [o.error for _, o in items],
        "refunds": [int(o.refund_attempt) for _, o in items],
    }


class PostgresStore:
    dialect = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        statement_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._min_size = 1
        self._max_size = pool_size
        self._statement_timeout_ms = round(statement_timeout * 1000)  # 0: none
        self._connect_timeout = connect_timeout
        self._connect_seconds = max(1, round(connect_timeout))  # libpq takes whole seconds
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._listening: frozenset[str] = frozenset()
        self._down = False  # the last operation lost its connection, or got none
        # two batches at once: one waits for its round trip while the next one fills
        self._ingests = IngestBatcher(
            self._write_ingest_batch,
            self._ingest_alone,
            max_in_flight=max(1, min(INGEST_BATCHES_IN_FLIGHT, pool_size // 2)),
        )
        in_flight = WRITE_BATCHES_IN_FLIGHT
        alone = max(1, pool_size // 4)  # per batcher: the pool serves ingest and claims too
        # A worker's step records and run endings share one batcher: both kinds of write
        # of concurrent runs go in one transaction, so one commit (and round trip) carries
        # them, where two batchers committed each kind on its own.
        self.writes: WriteBatcher[Write, bool] = WriteBatcher(
            self._write_batch,
            self._write_alone,
            key=_write_key,
            max_in_flight=in_flight,
            max_alone=alone,
            name="hookline-write-batch",
        )

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": self._connect_seconds,
            "options": f"-c statement_timeout={self._statement_timeout_ms}",
        }

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            open=False,
            kwargs=self._connect_kwargs(),
            configure=_configure,
            name="hookline",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        self._pool = pool

    async def close(self) -> None:
        await self._ingests.drain()
        await self.writes.drain()
        await self._stop_listener()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _run(self, op: Callable[[Conn], Awaitable[T]], *, transaction: bool = True) -> T:
        """Run ``op`` on a pooled connection (in one transaction); psycopg errors → StoreError."""
        assert self._pool is not None, "store is not open"
        tries = 0
        while True:
            tries += 1
            wait = ACQUIRE_WHILE_DOWN_SECONDS if self._down else ACQUIRE_SECONDS
            try:
                async with self._pool.connection(timeout=wait) as conn:
                    if not transaction:
                        result = await op(conn)
                    else:
                        async with conn.transaction():
                            result = await op(conn)
                self._down = False
                return result
            except psycopg.Error as exc:
                if isinstance(exc, _RETRYABLE) and tries < _MAX_TRIES:
                    await asyncio.sleep(0.005 * tries)
                    continue
                if _connection_lost(exc):
                    self._down = True
                raise StoreError(f"{type(exc).__name__}: {exc}") from exc

    async def migrate(self) -> int:
        lock = {"space": _LOCK_SPACE_MIGRATE, "key": 0}
        known = migrations("postgres")

        async def op(conn: Conn) -> int:
            await conn.execute(Q["advisory_lock"], lock)
            try:
                await _refuse_foreign(conn, known[-1][0])
                await conn.execute(Q["create_schema_migrations"])
                row = await _one(conn, "schema_version")
                current = int(row[0]) if row else 0
                for version, name, sql in known:
                    if version <= current:
                        continue
                    async with conn.transaction():
                        # a migration may take longer than any query of the service
                        await conn.execute("SET LOCAL statement_timeout = 0")
                        await conn.execute(sql)  # several statements: allowed without parameters
                        await conn.execute(
                            Q["insert_migration"],
                            {"version": version, "name": name, "now": time.time()},
                        )
                    current = version
                return current
            finally:
                await conn.execute(Q["advisory_unlock"], lock)

        return await self._run(op, transaction=False)

    async def check_ready(self) -> None:
        """On a fresh connection of its own (the pool may be waiting on a dead server), with
        the whole probe bounded by ``PROBE_SECONDS``."""
        expected = migrations("postgres")[-1][0]

        async def probe() -> int:
            conn = await AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=2,  # libpq's least; the wait_for below is the real bound
                options=f"-c statement_timeout={round(PROBE_SECONDS * 1000)}",
            )
            async with conn:
                try:
                    row = await _one(conn, "schema_version")
                except errors.UndefinedTable as exc:  # its first line: no SQL, no caret
                    reason = str(exc).splitlines()[0] if str(exc) else "no schema_migrations"
                    raise SchemaError(
                        f"schema not migrated ({reason}): run `hookline migrate` first"
                    ) from None
                return int(row[0]) if row else 0

        try:
            version = await asyncio.wait_for(probe(), PROBE_SECONDS)
        except TimeoutError:
            raise StoreError("PostgreSQL did not answer in time") from None
        except psycopg.Error as exc:
            raise StoreError(f"{type(exc).__name__}: {exc}") from exc
        if version != expected:
            raise SchemaError(f"schema version {version}, expected {expected}")

    # -- dashboard sessions (the database's clock: ``hookline_now()``) -----------------------

    async def create_session(self, id_hash: str, token_hash: str, max_age: float) -> None:
        async def op(conn: Conn) -> None:
            program = sessions.create(id_hash, token_hash, max_age, 0.0)
            await run_async(program, _executor(conn), STATEMENTS)

        await self._run(op)

    async def session_valid(self, id_hash: str, token_hash: str) -> bool:
        async def op(conn: Conn) -> bool:
            program = sessions.valid(id_hash, token_hash, 0.0)
            return await run_async(program, _executor(conn), STATEMENTS)

        return await self._run(op, transaction=False)

    async def delete_session(self, id_hash: str) -> None:
        async def op(conn: Conn) -> None:
            await run_async(sessions.delete(id_hash), _executor(conn), STATEMENTS)

        await self._run(op)

    async def forget_sessions_of_other_tokens(self, token_hash: str) -> None:
        async def op(conn: Conn) -> None:
            program = sessions.forget_other_tokens(token_hash)
            await run_async(program, _executor(conn), STATEMENTS)

        await self._run(op)

    # -- ingestion --------------------------------------------------------------------------

    async def ingest(self, event: NewEvent, resume_failed: bool) -> IngestResult:
        """Group-committed with concurrent ingests (``hookline.store.pg_ingest``), except
        an event whose body is checked for replays: that check takes a lock on the body's
        digest and a lookup, in the event's own transaction."""
        if event.body_sha256 is not None:
            return await self._ingest_alone(event, resume_failed)
        return await self._ingests.ingest(event, resume_failed)

    async def _write_ingest_batch(self, params: Params) -> set[str]:
        """One statement in autocommit: it returns once the batch is committed. On an error
        each event goes alone (``_ingest_alone``: its answer, or StoreError → 503)."""
        assert self._pool is not None, "store is not open"
        wait = ACQUIRE_WHILE_DOWN_SECONDS if self._down else ACQUIRE_SECONDS
        try:
            async with self._pool.connection(timeout=wait) as conn:
                cur = await conn.execute(Q["ingest_batch"], params)
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            if _connection_lost(exc):
                self._down = True
            raise
        self._down = False
        return {row[0] for row in rows}

    async def _ingest_alone(self, event: NewEvent, resume_failed: bool) -> IngestResult:
        """One event in its own transaction: a duplicate's answer, a resume, a retry."""
        row_params = {
            "id": event.id,
            "source": event.source,
            "provider_event_id": event.provider_event_id,
            "type": event.type,
            "status": "queued" if event.runs else "unhandled",
            "received_at": event.received_at,
            "body": event.body,
            "headers": json.dumps(event.headers, separators=(",", ":")),
            "body_sha256": event.body_sha256,
        }
        key = {"source": event.source, "provider_event_id": event.provider_event_id}
        replay = {**key, "body_sha256": event.body_sha256, "since": event.replay_since}

        async def op(conn: Conn) -> IngestResult:
            # a resend under a stored id is that event (a duplicate, maybe resumed), even
            # when the same body came later under another id: the query skips stored ids
            if event.replay_since is not None:
                await conn.execute(Q["lock_body_digest"], replay)
                original = await _one(conn, "replay_original", replay)
                if original is not None:
                    return IngestResult(original[0], duplicate=True, replay_of=original[1])
            while True:
                cur = await conn.execute(Q["insert_event"], row_params)
                if cur.rowcount == 1:
                    if event.runs:
                        await cur.executemany(
                            Q["insert_run"],
                            [
                                {
                                    "id": run.id,
                                    "event_id": event.id,
                                    "handler": run.handler,
                                    "generation": 0,
                                    "max_attempts": run.max_attempts,
                                    "concurrency_key": run.concurrency_key,
                                }
                                for run in event.runs
                            ],
                        )
                        await _notify(conn, [run.handler for run in event.runs])
                    return IngestResult(event.id, duplicate=False)
                # lock the existing event when resuming: two resends cannot both resume it
                found = await _one(
                    conn, "lock_event_by_key" if resume_failed else "event_id_by_key", key
                )
                if found is None:
                    continue  # the conflicting event was pruned meanwhile: insert again
                existing: str = found[0]
                resumed: list[str] = []
                if resume_failed:
                    resumed = await _new_runs_from_latest(
                        conn, existing, "resume", only_if_all_failed=True
                    )
                return IngestResult(existing, duplicate=True, resumed_run_ids=tuple(resumed))

        return await self._run(op)

    # -- jobs -------------------------------------------------------------------------------

    async def enqueue_job(self, job: NewJob) -> EnqueueResult:
        insert = jobs.prepare(job)

        async def op(conn: Conn) -> EnqueueResult:
            return await run_async(jobs.enqueue(job, insert), _executor(conn), STATEMENTS)

        return await self._run(op)

    async def get_job(self, job_id: str) -> JobRecord | None:
        async def op(conn: Conn) -> JobRecord | None:
            return await run_async(jobs.get(job_id), _executor(conn), STATEMENTS)

        return await self._run(op, transaction=False)

    # -- schedules (their callers read the store's clock: ``now()``) -------------------------

    async def record_ticks(
        self, schedule: str, ticks: Sequence[NewTick], now: float
    ) -> list[TickResult]:
        async def op(conn: Conn) -> list[TickResult]:
            return await run_async(
                schedules.record(schedule, ticks, now), _executor(conn), STATEMENTS
            )

        return await self._run(op)

    async def trigger_schedule(self, schedule: str, job: NewJob) -> EnqueueResult:
        async def op(conn: Conn) -> EnqueueResult:
            return await run_async(schedules.trigger(schedule, job), _executor(conn), STATEMENTS)

        return await self._run(op)

    async def set_schedule_paused(self, schedule: str, paused: bool, now: float) -> None:
        async def op(conn: Conn) -> None:
            await run_async(
                schedules.set_paused(schedule, paused, now), _executor(conn), STATEMENTS
            )

        await self._run(op)

    async def schedule_state(self, schedule: str, ticks: int = 10) -> ScheduleState:
        async def op(conn: Conn) -> ScheduleState:
            return await run_async(schedules.state(schedule, ticks), _executor(conn), STATEMENTS)

        return await self._run(op, transaction=False)

    # -- reading ----------------------------------------------------------------------------

    async def list_events(
        self, flt: EventFilter, limit: int, before_seq: int | None
    ) -> list[EventSummary]:
        params = {**_filter_params(flt), "before_seq": before_seq, "limit": limit}

        async def op(conn: Conn) -> list[EventSummary]:
            return [EventSummary(*row) for row in await _all(conn, "list_events", params)]

        return await self._run(op, transaction=False)

    async def get_event(self, event_id: str) -> EventRecord | None:
        async def op(conn: Conn) -> EventRecord | None:
            row = await _one(conn, "event_by_id", {"id": event_id})
            if row is None:
                return None
            run_rows = await _all(conn, "runs_of_event", {"event_id": event_id})
            runs = [await _with_steps(conn, records.run_from_row(r)) for r in run_rows]
            return EventRecord(EventSummary(*row[:7]), json.loads(row[7]), bytes(row[8]), runs)

        return await self._run(op, transaction=False)

    async def get_run(self, run_id: str) -> RunRecord | None:
        async def op(conn: Conn) -> RunRecord | None:
            row = await _one(conn, "run_by_id", {"id": run_id})
            return None if row is None else await _with_steps(conn, records.run_from_row(row))

        return await self._run(op, transaction=False)

    async def load_steps(
        self, event_id: str, handler: str, generation: int, attempts: bool = False
    ) -> list[StepRecord]:
        async def op(conn: Conn) -> list[StepRecord]:
            return await _load_steps(conn, event_id, handler, generation, attempts)

        return await self._run(op, transaction=False)

    # -- pipeline ---------------------------------------------------------------------------

    async def now(self) -> float:
        async def op(conn: Conn) -> float:
            row = await _one(conn, "now")
            assert row is not None
            return float(row[0])

        return await self._run(op, transaction=False)

    async def has_due_runs(self, handlers: Sequence[str]) -> bool:
        async def op(conn: Conn) -> bool:
            row = await _one(conn, "any_due", {"handlers": list(handlers)})
            return bool(row and row[0])

        return await self._run(op, transaction=False)

    async def claim_runs(
        self, worker_id: str, handlers: Sequence[str], limit: int, lease_seconds: float
    ) -> list[ClaimedRun]:
        params = {
            "worker_id": worker_id,
            "handlers": list(handlers),
            "limit": limit,
            "lease": lease_seconds,
        }

        async def op(conn: Conn) -> list[ClaimedRun]:
            # Two round trips when no due run has a concurrency key (nine before): BEGIN and
            # claim_runs (lock, lease, read), then the events' lock, their status and COMMIT.
            async with _pipelined_transaction(conn):
                # Its generic plan, kept (HOT): planning this statement costs more than
                # running it (0.6 ms per claim), and PostgreSQL's own choice stays with
                # custom plans. Even made on empty tables it probes indexes only (a test).
                rows = await _all(conn, "claim_runs", params)
                now, keyed_ids, keyed_handlers, keyed_keys = rows[0][:4]
                claimed = [records.claimed_from_row(row[4:]) for row in rows if row[4]]
                if keyed_ids:
                    claimed += await _claim_keyed(
                        conn,
                        worker_id,
                        lease_seconds,
                        float(now),
                        list(zip(keyed_ids, keyed_handlers, keyed_keys, strict=True)),
                    )
                if claimed:
                    # as _refresh does: lock the events (id order), then, with a fresh
                    # snapshot, mark those whose claimed run now decides their status
                    event_ids = sorted({c.run.event_id for c in claimed})
                    await _execute(conn, "lock_claimed_events", {"ids": event_ids})
                    await _execute(
                        conn, "claimed_events_running", {"run_ids": [c.run.id for c in claimed]}
                    )
            return claimed

        return await self._run(op, transaction=False)

    async def heartbeat(
        self, claims: Sequence[Claim], lease_seconds: float
    ) -> dict[str, RunStatus]:
        held: dict[str, RunStatus] = {}
        by_worker: dict[str, list[Claim]] = {}
        for c in claims:
            by_worker.setdefault(c.worker_id, []).append(c)
        for worker_id, mine in by_worker.items():
            params = {
                "lease": lease_seconds,
                "ids": [c.run_id for c in mine],
                "fences": [c.token for c in mine],
                "worker_id": worker_id,
            }

            async def op(conn: Conn, params: Params = params) -> list[TupleRow]:
                async with _pipelined_transaction(conn):  # one round trip
                    cur = await _execute(conn, "heartbeat", params)
                return await cur.fetchall()

            held.update({row[0]: row[1] for row in await self._run(op, transaction=False)})
        return held

    async def record_step(self, claim: Claim, outcome: StepOutcome) -> bool:
        """Group-committed with the step records and endings of concurrent runs
        (``pg_batch``)."""
        return await self.writes.submit((claim, outcome))

    async def _write_batch(self, items: Sequence[Write]) -> list[bool | None]:
        """Step records and endings of many claims in one transaction, one round trip.

        A step record answers whether its claim was held; an ending answers True, or None
        for a claim that was not held (the one-run way then tells a cancelled run to let go
        from a refusal or a retried finish)."""
        steps = [(c, o) for c, o in items if isinstance(o, StepOutcome)]
        endings = [(c, o) for c, o in items if isinstance(o, RunOutcome)]

        async def op(conn: Conn) -> tuple[set[str], set[str]]:
            # BEGIN, the step records, the endings and their wake-ups, then (as _refresh
            # does) lock the ended runs' events and derive their status from committed
            # state, COMMIT. (conn.transaction() would sync after BEGIN and before COMMIT.)
            recorded = ended = None
            async with _pipelined_transaction(conn):
                if steps and endings:  # all the batch's runs in one id order (lock_runs)
                    await _execute(conn, "lock_runs", {"ids": sorted({c.run_id for c, _ in items})})
                if steps:
                    recorded = await _execute(conn, "record_steps", _steps_params(steps))
                if endings:
                    params = _endings_params(endings)
                    of_runs = {"run_ids": params["ids"]}
                    ended = await _execute(conn, "finish_runs", params)
                    await _execute(conn, "lock_events_of_runs", of_runs)
                    await _execute(conn, "refresh_events_of_runs", of_runs)
            held = {row[0] for row in await recorded.fetchall()} if recorded else set()
            finished = {row[0] for row in await ended.fetchall()} if ended else set()
            return held, finished

        held, finished = await self._run(op, transaction=False)
        return [
            (c.run_id in held)
            if isinstance(o, StepOutcome)
            else (True if c.run_id in finished else None)
            for c, o in items
        ]

    async def _write_alone(self, item: Write) -> bool:
        claim, outcome = item
        if isinstance(outcome, StepOutcome):
            return await self._record_step_alone((claim, outcome))
        return await self._finish_alone((claim, outcome))

    async def _record_step_alone(self, item: tuple[Claim, StepOutcome]) -> bool:
        claim, o = item
        params = {
            "run_id": claim.run_id,
            "worker_id": claim.worker_id,
            "fence": claim.token,
            "event_id": o.event_id,
            "handler": o.handler,
            "generation": o.generation,
            "name": o.name,
            "position": o.position,
            "number": o.number,
            "started_at": o.started_at,
            "ended_at": o.ended_at,
            "outcome": "succeeded" if o.succeeded else "failed",
            "error": o.error,
            "traceback": o.traceback,
            "result": o.result_json,
        }

        async def op(conn: Conn) -> bool:
            row = await _one(conn, "record_step", params)
            return bool(row and row[0])

        return await self._run(op, transaction=False)  # one statement: its own transaction

    async def finish_run(self, claim: Claim, outcome: RunOutcome) -> bool:
        """Group-committed with the step records and endings of concurrent runs
        (``pg_batch``)."""
        return await self.writes.submit((claim, outcome))

    async def _finish_alone(self, item: tuple[Claim, RunOutcome]) -> bool:
        claim, o = item
        params = {
            "status": o.status,
            "delay": o.delay,
            "result": o.result_json,
            "error": o.error,
            "refund": int(o.refund_attempt),
            "id": claim.run_id,
            "fence": claim.token,
            "worker_id": claim.worker_id,
        }

        async def op(conn: Conn) -> bool:
            row = await _one(conn, "finish_run", params)
            if row is None:  # not ours any more; if cancelled while we ran, let go of it
                released = await _one(conn, "release_cancelled", params)
                if released is not None:
                    await _notify(conn, [released[1]])
                    return False
                # a retry of a finish whose first try was committed (its answer was lost)
                return await _one(conn, "already_finished", params) is not None
            event_id, concurrency_key, handler, claimable_now = row
            await _refresh(conn, [event_id])
            waiting = o.status in ("queued", "retrying") and claimable_now
            if waiting or concurrency_key is not None:  # the key's next run may start
                await _notify(conn, [handler])
            return True

        return await self._run(op)

    async def redeliver(self, event_id: str, mode: RedeliveryMode) -> list[str] | None:
        async def op(conn: Conn) -> list[str] | None:
            if not await _all(conn, "lock_events", {"ids": [event_id]}):
                return None
            return await _new_runs_from_latest(
                conn, event_id, mode, False, refuse_in_progress=mode == "fresh"
            )

        return await self._run(op)

    async def redeliver_matching(self, flt: EventFilter, mode: RedeliveryMode) -> int:
        params = _filter_params(flt)

        async def op(conn: Conn) -> int:
            ids = [row[0] for row in await _all(conn, "lock_events_matching", params)]
            for event_id in ids:
                await _new_runs_from_latest(conn, event_id, mode, False)
            return len(ids)

        return await self._run(op)

    async def cancel_run(self, run_id: str) -> RunRecord | None:
        async def op(conn: Conn) -> bool:
            row = await _one(conn, "run_key", {"id": run_id})
            if row is None:
                return False
            cur = await conn.execute(Q["cancel_run"], {"id": run_id})
            await _refresh(conn, [row[0]])
            if cur.rowcount and row[1] is not None:  # the key's next run may start
                await _notify(conn, [row[2]])
            return True

        if not await self._run(op):
            return None
        return await self.get_run(run_id)

    async def prune(self, older_than: float, include_failed: bool) -> int:
        params = {"older_than": older_than, "include_failed": include_failed, "limit": PRUNE_CHUNK}

        async def op(conn: Conn) -> int:
            cur = await conn.execute(Q["prune_events"], params)
            return cur.rowcount

        total = 0
        while (deleted := await self._run(op)) > 0:
            total += deleted

        async def retire(conn: Conn) -> None:
            stale = await _all(conn, "stale_workers", {"after": RETIRE_WORKERS_AFTER})
            if not stale:
                return
            retired = await _one(conn, "retired_stats")
            stats = WorkerStats.from_json(retired[0] if retired else None)
            for _id, worker_stats in stale:
                stats.add(WorkerStats.from_json(worker_stats))
            await conn.execute(Q["delete_workers"], {"ids": [row[0] for row in stale]})
            await conn.execute(Q["upsert_retired"], {"stats": stats.to_json()})

        await self._run(retire)
        return total

    async def queue_depth(self, cap: int) -> int:
        return await self._count("queue_depth", {"cap": cap})

    async def run_counts(self) -> dict[str, int]:
        async def op(conn: Conn) -> dict[str, int]:
            return {status: int(n) for status, n in await _all(conn, "run_counts")}

        return await self._run(op, transaction=False)

    async def worker_heartbeat(self, worker: WorkerInfo, stats: WorkerStats) -> None:
        params = {
            "id": worker.id,
            "host": worker.host,
            "pid": worker.pid,
            "started_at": worker.started_at,
            "stats": stats.to_json(),
        }

        async def op(conn: Conn) -> None:
            await conn.execute(Q["upsert_worker"], params)

        await self._run(op, transaction=False)

    async def worker_stopped(self, worker_id: str, stats: WorkerStats) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(Q["worker_stopped"], {"id": worker_id, "stats": stats.to_json()})

        await self._run(op)

    async def live_workers(self, within_seconds: float = 30.0) -> int:
        return await self._count("live_workers", {"within": within_seconds})

    async def worker_stats(self) -> WorkerStats:
        async def op(conn: Conn) -> WorkerStats:
            total = WorkerStats()
            for (stats,) in await _all(conn, "worker_stats"):
                total.add(WorkerStats.from_json(stats))
            return total

        return await self._run(op, transaction=False)

    async def _count(self, name: str, params: Params) -> int:
        async def op(conn: Conn) -> int:
            row = await _one(conn, name, params)
            return int(row[0]) if row else 0

        return await self._run(op, transaction=False)

    # -- wake-ups ---------------------------------------------------------------------------

    async def wait_for_work(self, handlers: Sequence[str], timeout: float) -> bool:
        """Return True on a notification for one of ``handlers`` (a run of theirs may be
        claimable), False after ``timeout``.

        A wake-up may be spurious (the first call, a reconnect, a notification already
        served): the caller just claims again.
        """
        wanted = frozenset(handlers)
        if self._listener is None or wanted != self._listening:
            await self._stop_listener()
            self._listening = wanted
            self._listener = asyncio.create_task(self._listen(wanted), name="hookline-listen")
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            return False
        self._wake.clear()
        return True

    async def _stop_listener(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self, handlers: frozenset[str]) -> None:
        while True:
            try:
                conn = await AsyncConnection.connect(self.url, **self._connect_kwargs())
                async with conn:
                    for name in sorted({channel(h) for h in handlers}):
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
                    self._wake.set()  # (re)connected: anything sent meanwhile was missed
                    async for _notify in conn.notifies():
                        self._wake.set()
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost; retrying", extra={"error": str(exc)})
                self._wake.set()
                await asyncio.sleep(1.0)
