"""Group commit for SQLite: one writer thread, many callers, one fsync per batch.

Every write is a function ``op(conn) -> result``. Callers on the event loop
``await writer.run(op)``; the thread takes everything queued since its last
commit, runs the ops in a single ``BEGIN IMMEDIATE`` transaction, commits once
(``synchronous=FULL``: that commit is the fsync) and only then resolves the
callers' futures. While one batch is being fsynced the next one queues up, so the
fsync cost is shared by every concurrent request.

A failing op must not take the others of its batch down with it. The batch is
first run optimistically, ops back to back; if one raises, that transaction is
rolled back and the batch is run again with each op in its own SAVEPOINT, so the
failed op's writes alone are undone and it alone gets the error. Savepoints cost
two statements per op, hence the optimistic first run. So an op may run twice: it
must act only through ``conn`` (its first run is rolled back) and not keep state
across calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from hookline.errors import StoreError

# SQLite result codes (primary, the low byte) that mean the storage itself failed: the disk
# is full, an I/O error, the file cannot be opened or written, or it is corrupt.
_STORAGE_FAULTS = frozenset({8, 10, 11, 13, 14, 26})  # READONLY IOERR CORRUPT FULL CANTOPEN NOTADB


def storage_fault(error: BaseException | None) -> bool:
    """Whether ``error`` (or its cause) is SQLite reporting a failed disk, not a failed op."""
    cause = error.__cause__ if isinstance(error, StoreError) else error
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _STORAGE_FAULTS


T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_Item = tuple["Op | OpRows", asyncio.Future[Any], asyncio.AbstractEventLoop]
_CallItem = tuple[Op, asyncio.Future[Any], asyncio.AbstractEventLoop]
_Outcome = tuple[asyncio.Future[Any], BaseException | None, Any]  # future, error, result
_Outcome_ = tuple[BaseException | None, Any]  # error, result
_STOP = object()


class _OpFailed(Exception):
    """An op of an optimistic (savepoint-free) batch raised; the batch was rolled back."""


#: The WAL is cut back to this size whenever a checkpoint restarts it. Without a limit it
#: keeps the size of its largest burst for good: a long read (a prune, a big admin query)
#: stops checkpoints from restarting it, it grows meanwhile and never shrinks (a soak of
#: a million events left 184 MiB).
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def connect(
    path: str,
    *,
    busy_timeout_ms: int = 30_000,
    wal_size_limit: int = WAL_SIZE_LIMIT_BYTES,
    cached_statements: int = 128,
) -> sqlite3.Connection:
    """A connection configured the way every hookline SQLite connection must be;
    ``cached_statements``: how many prepared statements it keeps (sqlite3's LRU cache)."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=cached_statements
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA journal_size_limit = {int(wal_size_limit)}")
    # FULL: a commit is on disk before it returns, so an ack survives an OS crash.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


LOCK_WAIT_SECONDS = 30.0


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``: (0, 0) when there is none; None for
    ``:memory:``. Other ``OSError``s (a directory turned unreadable) are raised."""
    if path == ":memory:":
        return None
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (found.st_dev, found.st_ino)


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """Take the write lock, retrying every ~0.2 ms while another process holds it.

    SQLite's own busy handler sleeps 1, 2, 5, … up to 100 ms between tries, which
    turns a 2 ms lock wait into tens of milliseconds of ack latency when workers
    and the server share the file; a short spin keeps the wait close to the real
    hold time. The writer connection therefore has no busy timeout of its own.
    """
    if conn.in_transaction:  # already taken before the batch was formed
        return
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.0002)


OP_LOG_COLUMNS = (
    "kind", "run_id", "event_id", "handler", "generation", "name", "position", "number",
    "started_at", "ended_at", "status", "result", "error", "traceback", "worker", "at",
    "until", "n", "refund", "host", "pid", "fence", "handlers", "stats",
)  # fmt: skip
_ROW = "(" + ", ".join("?" * len(OP_LOG_COLUMNS)) + ")"
_INSERT = f"INSERT INTO op_log ({', '.join(OP_LOG_COLUMNS)}) VALUES "
_ROWS_PER_STATEMENT = 32_000 // len(OP_LOG_COLUMNS)  # SQLite allows 32,766 parameters
#: The writer's statement cache. Each number of rows in one op_log INSERT is a statement of
#: its own, and a prepared one holds its triggers' code too: 66 KiB for one row, 160 KiB for
#: 50. With sqlite3's default of 128 the 20-30 sizes a process sees under load stayed
#: prepared, 2-3 MiB a process (docs/benchmarks.md "Memory per process"). With 16 the
#: statements used at every commit stay, and a size not used lately is prepared again
#: (0.3-0.9 ms; ~40 times per 20,000 events in bench/pipeline_e2e.py, under 2 µs an event).
WRITER_CACHED_STATEMENTS = 16


Then = Callable[[sqlite3.Connection], Any]
#: A read for many writes at once: the ``then_arg`` of each, in order → one result each.
ThenAll = Callable[[sqlite3.Connection, list[Any]], list[Any]]


class OpRows:
    """Rows for ``op_log``: writes that triggers apply inside one INSERT statement.

    ``then``: a read run on the writer's own connection once the rows are committed (what
    the triggers did: was the claim still held, which runs did a claim take); its result is
    the caller's. Reading there, not through the store's reader, saves a hop to the reader's
    thread and back per write: the caller is woken once, with the answer.

    ``then_all`` (instead of ``then``): the same read for every write of a batch that names
    the same function, made once: it is called with the ``then_arg`` of each of them and
    returns one result per write, in order. A worker's step records and run endings read
    back this way: one statement per batch instead of one per write.
    """

    __slots__ = ("rows", "then", "then_all", "then_arg")

    def __init__(
        self,
        *rows: dict[str, Any],
        then: Then | None = None,
        then_all: ThenAll | None = None,
        then_arg: Any = None,
    ) -> None:
        unknown = {k for row in rows for k in row} - set(OP_LOG_COLUMNS)
        if unknown:
            raise ValueError(f"unknown op_log columns: {sorted(unknown)}")
        self.rows = [tuple(row.get(c) for c in OP_LOG_COLUMNS) for row in rows]
        self.then = then
        self.then_all = then_all
        self.then_arg = then_arg

    @classmethod
    def positional(
        cls, row: tuple[Any, ...], *, then_all: ThenAll | None = None, then_arg: Any = None
    ) -> OpRows:
        """One row already in ``OP_LOG_COLUMNS`` order (a worker's hot path: no dict, no
        check of its keys per write)."""
        if len(row) != len(OP_LOG_COLUMNS):
            raise ValueError(f"an op_log row has {len(OP_LOG_COLUMNS)} values, not {len(row)}")
        self = cls.__new__(cls)
        self.rows = [row]
        self.then = None
        self.then_all = then_all
        self.then_arg = then_arg
        return self

    def read(self, conn: sqlite3.Connection) -> Any:
        """What ``then`` or ``then_all`` reads for these rows alone."""
        if self.then_all is not None:
            return self.then_all(conn, [self.then_arg])[0]
        return None if self.then is None else self.then(conn)

    def as_op(self) -> Callable[[sqlite3.Connection], Any]:
        """The same rows as an ordinary op, to run inside a mixed batch's transaction (its
        ``then`` sees the rows applied: the batch holds the write lock until it commits)."""

        def op(conn: sqlite3.Connection) -> Any:
            conn.executemany(_INSERT + _ROW, self.rows)
            return self.read(conn)

        return op


#: An empty write: takes the write lock and releases it in one ``sqlite3_step`` ("database
#: is locked" while another connection holds it). op_log has no DELETE trigger.
_LOCK_PROBE = "DELETE FROM op_log WHERE 0"


def read_committed(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[Any]:
    """A read on the writer's connection (autocommit, no busy timeout of its own): retried
    while SQLite answers "locked", which a WAL reader sees only in rare moments."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.0002)


def _then(op: Op | OpRows, conn: sqlite3.Connection) -> _Outcome_:
    """(error, result) of an applied OpRows' ``then`` (or ``then_all``, for it alone)."""
    if not isinstance(op, OpRows):
        return None, None
    try:
        return None, op.read(conn)
    except Exception as exc:
        return _wrap(exc), None


def _thens(batch: list[_Item], conn: sqlite3.Connection) -> list[_Outcome]:
    """The outcomes of a batch's applied items: each ``then`` on its own, each ``then_all``
    once for all the items that name it."""
    outcomes: list[_Outcome_] = [(None, None)] * len(batch)
    groups: dict[ThenAll, list[int]] = {}
    for i, (op, _future, _loop) in enumerate(batch):
        if isinstance(op, OpRows) and op.then_all is not None:
            groups.setdefault(op.then_all, []).append(i)
        else:
            outcomes[i] = _then(op, conn)
    for then_all, indices in groups.items():
        args = [cast(OpRows, batch[i][0]).then_arg for i in indices]
        try:
            results = then_all(conn, args)
            if len(results) != len(indices):
                raise RuntimeError(f"then_all read {len(results)} results for {len(args)}")
        except Exception as exc:
            for i in indices:  # each caller its own StoreError (raised in its own task)
                outcomes[i] = (_wrap(exc), None)
            continue
        for i, result in zip(indices, results, strict=True):
            outcomes[i] = (None, result)
    return [(item[1], *outcome) for item, outcome in zip(batch, outcomes, strict=True)]


class _Committed:
    """How many items of a batch (from its start) have their rows committed: a retry after
    a lock or an error goes on from there, never inserting a committed row again."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items = 0


def _rows_of(item: _Item) -> list[tuple[Any, ...]]:
    return item[0].rows if isinstance(item[0], OpRows) else []


def _insert_rows(conn: sqlite3.Connection, batch: list[_Item], committed: _Committed) -> None:
    """The rows of ``batch[committed.items:]`` into ``op_log``: one multi-row INSERT per chunk
    of whole items (an item's rows are never split between two commits), each chunk its own
    transaction, counted in ``committed`` once it is.

    Each statement takes the write lock, runs the triggers, commits (the fsync) and
    releases the lock within one ``sqlite3_step`` call, with the GIL released: the
    lock is never held while this thread waits for the GIL.
    """
    start = committed.items
    while start < len(batch):
        end, rows = start, list[tuple[Any, ...]]()
        while end < len(batch) and (
            not rows or len(rows) + len(_rows_of(batch[end])) <= _ROWS_PER_STATEMENT
        ):
            rows += _rows_of(batch[end])
            end += 1
        if len(rows) > _ROWS_PER_STATEMENT:  # one caller's rows beyond SQLite's parameters
            _insert_in_one_transaction(conn, rows)
        elif rows:
            sql = _INSERT + ", ".join([_ROW] * len(rows))
            conn.execute(sql, list(itertools.chain.from_iterable(rows)))
        committed.items = start = end


def _insert_in_one_transaction(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_INSERT + _ROW, rows)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already (full)
            conn.execute("ROLLBACK")
        raise


def _retry_while_locked(conn: sqlite3.Connection, batch: list[_Item]) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    committed = _Committed()
    while True:
        try:
            _insert_rows(conn, batch, committed)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.0002)


def _wrap(exc: Exception) -> Exception:
    """Database errors leave the store as StoreError; other errors are bugs, passed as is."""
    if isinstance(exc, sqlite3.Error):
        error = StoreError(f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error
    return exc


def _resolve(batch: list[_Outcome]) -> None:
    for future, error, result in batch:
        if future.done():  # the caller was cancelled; the write happened anyway
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class GroupCommitWriter:
    def __init__(self, path: str, *, max_batch: int = 1024) -> None:
        self._path = path
        # absolute once: SQLite resolved the relative path at open, a later chdir (a
        # handler's) must not make the same file look gone
        self._stat_path = path if path == ":memory:" else os.path.abspath(path)
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._carry: collections.deque[Any] = collections.deque()  # taken, not yet written
        self._stopping = False
        self._closed = False
        # The storage error of the last batch that hit one, until a batch commits a write
        # again: read by the readiness probe (a full disk answers 503 there too).
        self.fault: str | None = None
        self.batches = 0
        self.ops = 0
        self._file: tuple[int, int] | None = None  # (device, inode) of the file opened

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="hookline-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        """Flush everything queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    async def apply(self, rows: OpRows) -> Any:
        """Queue rows for ``op_log`` (see migration 0002); once they are committed, return
        what their ``then`` read (None without one)."""
        return await self._submit(rows)

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` in the next batch's transaction; return its result once committed."""
        result: T = await self._submit(op)
        return result

    async def _submit(self, op: Op | OpRows) -> Any:
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((op, future, loop))
        if self._closed:  # the thread ended between the check above and the put
            self._fail_pending(StoreError("the store is closed"))
        return await future

    def _main(self) -> None:
        try:
            conn = connect(self._path, cached_statements=WRITER_CACHED_STATEMENTS)
            conn.execute("PRAGMA busy_timeout = 0")  # see _begin_immediate
            self._file = file_identity(self._stat_path)
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            while True:
                if self._carry:  # taken while forming an earlier batch: written first
                    first = self._carry.popleft()
                elif self._stopping:
                    break
                else:
                    first = self._queue.get()
                if first is _STOP:
                    break
                if (gone := self.file_problem()) is not None:  # never ack into a lost file
                    self.fault = gone
                    self._resolve([first], [(first[1], StoreError(gone), None)])
                    continue
                if isinstance(first[0], OpRows):
                    self._commit_rows(conn, [first])
                else:
                    # Take the write lock first: what arrives while another process holds
                    # it joins this batch. A failure here is reported by _transaction.
                    with contextlib.suppress(sqlite3.Error):
                        _begin_immediate(conn)
                    self._commit_calls(conn, self._drain([first], rows_only=False))
        finally:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.rollback()
                conn.close()
            self._fail_pending(StoreError("the store is closed"))

    def file_problem(self) -> str | None:
        """Why the database file this writer opened is no longer the one at its path
        (deleted, or replaced by a restore or a copy), else None. A commit into it would
        be acknowledged and then lost with the file: one ``stat`` a batch is the price."""
        if self._file is None:
            return None
        try:
            if self._file == file_identity(self._stat_path):
                return None
        except OSError as exc:  # cannot tell: no write may be acknowledged meanwhile
            return f"the database file {self._stat_path} cannot be checked ({exc.strerror})"
        return (
            f"the database file {self._stat_path} was deleted or replaced while hookline "
            "ran; restart every hookline process using it"
        )

    def _drain(self, batch: list[_Item], *, rows_only: bool) -> list[_Item]:
        """Add what is queued to ``batch``; with ``rows_only``, other ops wait their turn."""
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._stopping = True
                break
            if rows_only and not isinstance(item[0], OpRows):
                self._carry.append(item)
                continue
            batch.append(item)
        return batch

    def _commit_rows(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        """Apply OpRows as multi-row INSERTs in autocommit mode (see ``OpRows``).

        While another process holds the write lock, rows queued meanwhile join the batch.
        If the batch fails for another reason, each caller's rows are tried on their own,
        so one bad row fails only its own caller.
        """
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        self._drain(batch, rows_only=True)
        committed = _Committed()  # items drained meanwhile join the batch's end
        while True:
            try:
                _insert_rows(conn, batch, committed)
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) and time.monotonic() < deadline:
                    self._wait_for_write_lock(conn, batch, deadline)
                    continue
                self._resolve(batch, self._after_failure(conn, batch, committed.items, exc))
                return
            except Exception as exc:
                self._resolve(batch, self._after_failure(conn, batch, committed.items, exc))
                return
            self._resolve(batch, _thens(batch, conn))
            return

    def _wait_for_write_lock(
        self, conn: sqlite3.Connection, batch: list[_Item], deadline: float
    ) -> None:
        """Until the write lock looks free (or the deadline): every ~0.2 ms, rows queued
        meanwhile join the batch, then an empty write probes the lock (``_LOCK_PROBE``
        takes it and lets it go within one step, writing nothing: no fsync). Retrying the
        batch's INSERT itself would bind all its values again at each try (~2 µs a row)."""
        while True:
            time.sleep(0.0002)
            self._drain(batch, rows_only=True)
            try:
                conn.execute(_LOCK_PROBE)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    return  # the INSERT tries and reports it

    @classmethod
    def _after_failure(
        cls, conn: sqlite3.Connection, batch: list[_Item], committed: int, error: Exception
    ) -> list[_Outcome]:
        """The committed items' outcomes, then the rest tried one by one."""
        return _thens(batch[:committed], conn) + cls._one_by_one(conn, batch[committed:], error)

    @staticmethod
    def _one_by_one(
        conn: sqlite3.Connection, batch: list[_Item], error: Exception
    ) -> list[_Outcome]:
        if len(batch) == 1:
            return [(batch[0][1], _wrap(error), None)]
        outcomes: list[_Outcome] = []
        for item in batch:
            try:
                _retry_while_locked(conn, [item])
            except Exception as exc:
                outcomes.append((item[1], _wrap(exc), None))
            else:
                outcomes.append((item[1], *_then(item[0], conn)))
        return outcomes

    def _commit_calls(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        calls: list[_CallItem] = [
            (op.as_op() if isinstance(op, OpRows) else op, future, loop)
            for op, future, loop in batch
        ]
        try:
            outcomes = self._transaction(conn, calls, isolated=len(calls) == 1)
        except _OpFailed:  # rolled back: run the batch again, each op in its own savepoint
            outcomes = self._transaction(conn, calls, isolated=True)
        self._resolve(batch, outcomes)

    def _resolve(self, batch: list[_Item], outcomes: list[_Outcome]) -> None:
        self.batches += 1
        self.ops += len(batch)
        faults = [error for _future, error, _result in outcomes if storage_fault(error)]
        if faults:
            self.fault = str(faults[0])
        elif any(error is None for _future, error, _result in outcomes):
            self.fault = None  # a write committed: the storage works again
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for (_op, _future, loop), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, resolved in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, resolved)
            except RuntimeError:  # loop closed: its callers are gone
                pass

    def _fail_pending(self, error: Exception) -> None:
        """After the thread ends, nobody may wait forever for a write."""
        self._closed = True
        leftovers = list(self._carry)
        self._carry.clear()
        while True:
            try:
                leftovers.append(self._queue.get_nowait())
            except queue.Empty:
                break
        items = [item for item in leftovers if item is not _STOP]
        if items:
            self._resolve(items, [(f, error, None) for _op, f, _loop in items])

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_CallItem], *, isolated: bool
    ) -> list[_Outcome]:
        """Run ``batch`` in one transaction and commit it; one outcome per op.

        ``isolated``: each op in a savepoint, so a failing op is rolled back alone and
        reported to its caller. Otherwise a failing op rolls the whole transaction
        back, and raises ``_OpFailed`` if the batch has other ops (with one op alone
        there is nothing to isolate: its error is its outcome).
        """
        outcomes: list[_Outcome] = []
        try:
            _begin_immediate(conn)
            for op, future, _loop in batch:
                if isolated:
                    conn.execute("SAVEPOINT op")
                try:
                    result = op(conn)
                except Exception as exc:
                    if not isolated:
                        conn.execute("ROLLBACK")
                        if len(batch) > 1:
                            raise _OpFailed from exc
                        return [(future, _wrap(exc), None)]
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((future, _wrap(exc), None))
                else:
                    outcomes.append((future, None, result))
                if isolated:
                    conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except _OpFailed:
            raise
        except Exception as exc:  # the transaction itself failed: nothing was written
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            outcomes = [(future, _wrap(exc), None) for _op, future, _loop in batch]
        return outcomes
