"""Group commit for SQLite: one writer thread, many callers, one fsync per batch.

Every write is a function ``op(conn) -> result``. Callers on the event loop
``await writer.run(op)``; the thread takes everything queued since its last
commit, runs each op inside its own SAVEPOINT of a single ``BEGIN IMMEDIATE``
transaction, commits once (``synchronous=FULL``: that commit is the fsync) and
only then resolves the callers' futures. While one batch is being fsynced the
next one queues up, so the fsync cost is shared by every concurrent request.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from app.errors import StoreError

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_Item = tuple[Op, asyncio.Future[Any], asyncio.AbstractEventLoop]
_STOP = object()


def connect(path: str, *, busy_timeout_ms: int = 30_000) -> sqlite3.Connection:
    """A connection configured the way every hookline SQLite connection must be."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a commit is on disk before it returns, so an ack survives an OS crash.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


LOCK_WAIT_SECONDS = 30.0


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """Take the write lock, retrying every ~0.2 ms while another process holds it.

    SQLite's own busy handler sleeps 1, 2, 5, … up to 100 ms between tries, which
    turns a 2 ms lock wait into tens of milliseconds of ack latency when workers
    and the server share the file; a short spin keeps the wait close to the real
    hold time. The writer connection therefore has no busy timeout of its own.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
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


def _resolve(batch: list[tuple[asyncio.Future[Any], BaseException | None, Any]]) -> None:
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
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self.batches = 0
        self.ops = 0

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

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, future, loop))
        return await future

    def _main(self) -> None:
        try:
            conn = connect(self._path)
            conn.execute("PRAGMA busy_timeout = 0")  # see _begin_immediate
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is _STOP:
                    break
                batch: list[_Item] = [first]
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                self._commit(conn, batch)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        try:
            _begin_immediate(conn)
            for op, future, _loop in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = op(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((future, _wrap(exc), None))
                else:
                    outcomes.append((future, None, result))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except Exception as exc:  # the transaction itself failed: nothing was written
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(future, _wrap(exc), None) for _op, future, _loop in batch]
        self.batches += 1
        self.ops += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_op, _future, loop), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, resolved in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, resolved)
            except RuntimeError:  # loop closed: its callers are gone
                pass
