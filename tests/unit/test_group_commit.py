"""``hookline.store.group_commit``: one writer thread, one transaction and fsync per batch.

Batches are made deterministic by a *blocker*: an op that holds the writer thread
until released, so everything queued meanwhile must go out in the next batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hookline.errors import StoreError
from hookline.store import group_commit
from hookline.store.group_commit import OP_LOG_COLUMNS, GroupCommitWriter, OpRows, connect


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "writer.db")


@pytest.fixture
def writer(db: str) -> Iterator[GroupCommitWriter]:
    w = GroupCommitWriter(db)
    w.start()
    yield w
    w.stop()


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS items (n INTEGER PRIMARY KEY, caller TEXT)")


async def make_op_log(writer: GroupCommitWriter, constraint: str = "") -> None:
    """A bare op_log table (every column, no triggers), with an optional table constraint."""
    columns = ", ".join([*OP_LOG_COLUMNS, *([constraint] if constraint else [])])
    await writer.run(lambda conn: conn.execute(f"CREATE TABLE op_log ({columns})"))


def insert(n: int) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO items VALUES (?, ?)", (n, f"caller-{n}"))
        return n * 10

    return op


def rows(db: str) -> list[int]:
    """What a separate connection sees on disk."""
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT n FROM items ORDER BY n")]


class Blocker:
    """An op that keeps the writer thread busy until ``release()``."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self._release = threading.Event()

    def __call__(self, conn: sqlite3.Connection) -> str:
        self.running.set()
        assert self._release.wait(timeout=30)
        return "blocker"

    async def hold(self, writer: GroupCommitWriter) -> asyncio.Task[Any]:
        task = asyncio.create_task(writer.run(self))
        await asyncio.to_thread(self.running.wait, 30)  # the thread is inside the op now
        return task

    def release(self) -> None:
        self._release.set()


async def queue_ops(writer: GroupCommitWriter, ops: list[Any]) -> list[asyncio.Task[Any]]:
    tasks = [asyncio.create_task(writer.run(op)) for op in ops]
    await asyncio.sleep(0)  # each task runs up to its await: every op is queued now
    return tasks


async def test_concurrent_ops_share_one_batch(writer: GroupCommitWriter, db: str) -> None:
    await writer.run(create_table)
    blocker = Blocker()
    held = await blocker.hold(writer)
    batches, ops = writer.batches, writer.ops

    tasks = await queue_ops(writer, [insert(n) for n in range(100)])
    blocker.release()
    results = await asyncio.gather(*tasks)

    assert await held == "blocker"
    assert results == [n * 10 for n in range(100)]
    assert writer.ops - ops == 101
    assert writer.batches - batches == 2  # the blocker's batch, then all hundred at once
    assert writer.batches < writer.ops
    assert rows(db) == list(range(100))


async def test_a_failing_op_does_not_lose_the_others_in_its_batch(
    writer: GroupCommitWriter, db: str
) -> None:
    await writer.run(create_table)
    await writer.run(insert(99))

    def half_done_then_fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO items VALUES (2, 'partial')")
        raise ValueError("handler bug")

    blocker = Blocker()
    held = await blocker.hold(writer)
    batches = writer.batches
    tasks = await queue_ops(
        writer,
        [insert(0), insert(1), half_done_then_fails, insert(3), insert(99), insert(4)],
    )
    blocker.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await held

    assert writer.batches - batches == 2  # all six shared one transaction
    assert results[:2] == [0, 10]
    assert isinstance(results[2], ValueError)  # a bug in an op reaches its caller as is
    assert results[3] == 30
    assert isinstance(results[4], StoreError)  # duplicate key: a database error
    assert isinstance(results[4].__cause__, sqlite3.IntegrityError)
    assert results[5] == 40
    # The failed ops' writes are rolled back (the 'partial' row too), the rest committed.
    assert rows(db) == [0, 1, 3, 4, 99]


async def test_results_go_to_their_own_callers(writer: GroupCommitWriter) -> None:
    await writer.run(create_table)

    async def caller(n: int) -> tuple[int, Any]:
        def op(conn: sqlite3.Connection) -> tuple[int, str]:
            conn.execute("INSERT INTO items VALUES (?, ?)", (n, f"caller-{n}"))
            row = conn.execute("SELECT caller FROM items WHERE n = ?", (n,)).fetchone()
            return n, row[0]

        return n, await writer.run(op)

    for n, result in await asyncio.gather(*(caller(n) for n in range(300))):
        assert result == (n, f"caller-{n}")


def test_callers_on_different_event_loops_get_their_own_results(
    writer: GroupCommitWriter,
) -> None:
    asyncio.run(writer.run(create_table))
    results: dict[str, list[int]] = {}

    def loop_thread(name: str, numbers: range) -> None:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(writer.run(insert(n)) for n in numbers)))

        results[name] = asyncio.run(main())

    threads = [
        threading.Thread(target=loop_thread, args=("a", range(0, 200))),
        threading.Thread(target=loop_thread, args=("b", range(200, 400))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {
        "a": [n * 10 for n in range(0, 200)],
        "b": [n * 10 for n in range(200, 400)],
    }


async def test_stop_flushes_every_queued_op(db: str) -> None:
    writer = GroupCommitWriter(db)
    writer.start()
    await writer.run(create_table)
    blocker = Blocker()
    held = await blocker.hold(writer)
    tasks = await queue_ops(writer, [insert(n) for n in range(200)])

    blocker.release()
    writer.stop()  # queued behind the 200 ops: they are all written before the thread ends

    assert rows(db) == list(range(200))
    assert await asyncio.gather(*tasks) == [n * 10 for n in range(200)]
    assert await held == "blocker"
    writer.stop()  # idempotent


async def test_data_survives_reopening_the_file(db: str) -> None:
    first = GroupCommitWriter(db)
    first.start()
    await first.run(create_table)
    await asyncio.gather(*(first.run(insert(n)) for n in range(50)))
    first.stop()

    second = GroupCommitWriter(db)
    second.start()
    try:

        def read(conn: sqlite3.Connection) -> list[int]:
            return [r[0] for r in conn.execute("SELECT n FROM items ORDER BY n")]

        assert await second.run(read) == list(range(50))
        await second.run(insert(50))
    finally:
        second.stop()
    assert rows(db) == list(range(51))


def test_connections_are_durable_wal(db: str) -> None:
    conn = connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync on commit
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


def test_start_fails_loudly_when_the_file_cannot_be_opened(tmp_path: Path) -> None:
    writer = GroupCommitWriter(str(tmp_path / "no-such-dir" / "x.db"))
    with pytest.raises(sqlite3.OperationalError):
        writer.start()


class Counted:
    """An insert that counts how many times the writer ran it."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __call__(self, conn: sqlite3.Connection) -> int:
        self.calls += 1
        conn.execute("INSERT INTO items VALUES (?, ?)", (self.n, f"caller-{self.n}"))
        return self.n * 10


async def test_a_batch_without_failures_runs_each_op_once(
    writer: GroupCommitWriter, db: str
) -> None:
    await writer.run(create_table)
    blocker = Blocker()
    held = await blocker.hold(writer)
    ops = [Counted(n) for n in range(20)]
    tasks = await queue_ops(writer, ops)
    blocker.release()

    assert await asyncio.gather(*tasks) == [n * 10 for n in range(20)]
    await held
    assert [op.calls for op in ops] == [1] * 20
    assert rows(db) == list(range(20))


async def test_after_a_failure_the_batch_is_rerun_with_only_the_rolled_back_first_run_lost(
    writer: GroupCommitWriter, db: str
) -> None:
    """The optimistic run stops at the failing op and is rolled back; the batch is run
    again with savepoints. Ops before the failure run twice, the rest once, and every
    write of the first run is gone."""
    await writer.run(create_table)
    blocker = Blocker()
    held = await blocker.hold(writer)
    before, after = Counted(0), Counted(2)

    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO items VALUES (1, 'partial')")
        raise ValueError("handler bug")

    tasks = await queue_ops(writer, [before, fails, after])
    blocker.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await held

    assert results[0] == 0 and results[2] == 20
    assert isinstance(results[1], ValueError)
    assert (before.calls, after.calls) == (2, 1)
    assert rows(db) == [0, 2]


async def test_a_lone_failing_op_gets_its_error_and_writes_nothing(
    writer: GroupCommitWriter, db: str
) -> None:
    await writer.run(create_table)

    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO items VALUES (7, 'partial')")
        conn.execute("INSERT INTO items VALUES (7, 'duplicate key')")

    with pytest.raises(StoreError) as caught:
        await writer.run(fails)
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert rows(db) == []
    assert await writer.run(insert(8)) == 80  # the writer goes on
    assert rows(db) == [8]


async def test_stop_writes_ops_set_aside_while_rows_were_batched(db: str) -> None:
    writer = GroupCommitWriter(db)
    writer.start()
    await writer.run(create_table)
    await make_op_log(writer)
    blocker = Blocker()
    held = await blocker.hold(writer)
    first = asyncio.create_task(writer.apply(OpRows({"kind": "a"})))
    middle = asyncio.create_task(writer.run(insert(7)))  # not a row: waits for its own batch
    last = asyncio.create_task(writer.apply(OpRows({"kind": "b"})))
    await asyncio.sleep(0)
    blocker.release()
    writer.stop()  # queued behind all three
    assert await held == "blocker"
    await asyncio.gather(first, last)
    assert await middle == 70
    assert rows(db) == [7]
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT kind FROM op_log")] == ["a", "b"]
    with pytest.raises(StoreError, match="closed"):
        await writer.run(insert(8))


async def test_rows_wait_for_another_connections_lock_without_binding_their_insert_again(
    writer: GroupCommitWriter, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_op_log(writer)
    tries: list[int] = []
    real = group_commit._insert_rows

    def counted(conn: sqlite3.Connection, batch: list[Any], committed: Any) -> None:
        tries.append(len(batch))
        real(conn, batch, committed)

    monkeypatch.setattr(group_commit, "_insert_rows", counted)
    other = sqlite3.connect(db, isolation_level=None)  # another process, holding the lock
    other.execute("BEGIN IMMEDIATE")
    try:
        first = asyncio.create_task(writer.apply(OpRows({"kind": "a"})))
        await asyncio.sleep(0.05)
        later = asyncio.create_task(writer.apply(OpRows({"kind": "b"})))
        await asyncio.sleep(0.05)
        assert not first.done()
    finally:
        other.execute("COMMIT")
        other.close()
    await asyncio.gather(first, later)
    # before: the INSERT itself (every value bound again) every 0.2 ms, ~500 tries
    assert len(tries) <= 3, len(tries)
    assert tries[-1] == 2  # the row queued during the wait went with the batch
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT kind FROM op_log")] == ["a", "b"]


async def test_a_bad_row_fails_only_its_own_caller(writer: GroupCommitWriter, db: str) -> None:
    await make_op_log(writer, "CHECK (kind != 'bad')")
    blocker = Blocker()
    held = await blocker.hold(writer)
    good = [asyncio.create_task(writer.apply(OpRows({"kind": f"ok{n}"}))) for n in range(3)]
    bad = asyncio.create_task(writer.apply(OpRows({"kind": "bad"})))
    await asyncio.sleep(0)
    blocker.release()
    await held
    await asyncio.gather(*good)
    with pytest.raises(StoreError, match="CHECK"):
        await bad
    with sqlite3.connect(db) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT kind FROM op_log")) == [
            "ok0",
            "ok1",
            "ok2",
        ]


async def test_rows_committed_before_a_bad_row_are_not_inserted_again(
    writer: GroupCommitWriter, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rows a statement: ok0 ok1 commit in the first, the bad row fails the second.
    # Each good row must be in op_log once (the triggers of a real op_log apply each row).
    monkeypatch.setattr(group_commit, "_ROWS_PER_STATEMENT", 2)
    await make_op_log(writer, "CHECK (kind != 'bad')")
    blocker = Blocker()
    held = await blocker.hold(writer)
    first = [asyncio.create_task(writer.apply(OpRows({"kind": f"ok{n}"}))) for n in range(2)]
    bad = asyncio.create_task(writer.apply(OpRows({"kind": "bad"})))
    last = asyncio.create_task(writer.apply(OpRows({"kind": "ok2"}, {"kind": "ok3"})))
    await asyncio.sleep(0)
    blocker.release()
    await held
    await asyncio.gather(*first, last)
    with pytest.raises(StoreError, match="CHECK"):
        await bad
    with sqlite3.connect(db) as conn:
        kinds = sorted(r[0] for r in conn.execute("SELECT kind FROM op_log"))
    assert kinds == ["ok0", "ok1", "ok2", "ok3"]


async def test_one_callers_rows_beyond_a_statement_are_one_transaction(
    writer: GroupCommitWriter, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "_ROWS_PER_STATEMENT", 2)
    await make_op_log(writer, "CHECK (kind != 'bad')")
    with pytest.raises(StoreError, match="CHECK"):  # all or nothing, though over 2 rows
        await writer.apply(OpRows(*({"kind": k} for k in ("a", "b", "c", "bad"))))
    await writer.apply(OpRows(*({"kind": k} for k in ("d", "e", "f"))))
    with sqlite3.connect(db) as conn:
        kinds = sorted(r[0] for r in conn.execute("SELECT kind FROM op_log"))
    assert kinds == ["d", "e", "f"]


async def test_a_transaction_sqlite_rolled_back_itself_reports_why_not_the_rollback(
    writer: GroupCommitWriter, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RAISE(ROLLBACK) ends the transaction inside SQLite, as a full disk does: the writer's
    # own ROLLBACK then fails ("no transaction is active") and must not hide the cause.
    monkeypatch.setattr(group_commit, "_ROWS_PER_STATEMENT", 2)
    await make_op_log(writer)
    await writer.run(
        lambda conn: conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON op_log WHEN NEW.kind = 'bad'"
            " BEGIN SELECT RAISE(ROLLBACK, 'refused by the trigger'); END"
        )
    )
    with pytest.raises(StoreError, match="refused by the trigger"):
        await writer.apply(OpRows(*({"kind": k} for k in ("a", "b", "bad"))))
    await writer.apply(OpRows(*({"kind": k} for k in ("c", "d", "e"))))  # the writer goes on
    with sqlite3.connect(db) as conn:
        kinds = sorted(r[0] for r in conn.execute("SELECT kind FROM op_log"))
    assert kinds == ["c", "d", "e"]


async def test_each_caller_gets_what_its_then_read_after_the_whole_batch_committed(
    writer: GroupCommitWriter, db: str
) -> None:
    await make_op_log(writer)

    def count(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT count(*) FROM op_log").fetchone()[0])

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT nope FROM op_log")

    blocker = Blocker()
    held = await blocker.hold(writer)
    counted = [
        asyncio.create_task(writer.apply(OpRows({"kind": f"k{n}"}, then=count))) for n in range(3)
    ]
    plain = asyncio.create_task(writer.apply(OpRows({"kind": "plain"})))
    fails = asyncio.create_task(writer.apply(OpRows({"kind": "read-fails"}, then=broken)))
    await asyncio.sleep(0)
    blocker.release()
    await held
    # one INSERT for the five rows: every read sees all of them, committed
    assert await asyncio.gather(*counted) == [5, 5, 5]
    assert await plain is None
    with pytest.raises(StoreError, match="nope"):
        await fails  # its read failed: it alone hears of it (its row was written)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM op_log").fetchone()[0] == 5


async def test_a_then_all_reads_once_for_every_write_of_the_batch_that_names_it(
    writer: GroupCommitWriter, db: str
) -> None:
    await make_op_log(writer)
    calls: list[list[Any]] = []

    def kinds_of(conn: sqlite3.Connection, args: list[Any]) -> list[Any]:
        calls.append(list(args))
        seen = {r[0] for r in conn.execute("SELECT kind FROM op_log")}
        return [(arg, arg in seen) for arg in args]

    def broken(conn: sqlite3.Connection, args: list[Any]) -> list[Any]:
        conn.execute("SELECT nope FROM op_log")
        return args

    def row(kind: str) -> tuple[Any, ...]:
        return (kind,) + (None,) * (len(OP_LOG_COLUMNS) - 1)

    blocker = Blocker()
    held = await blocker.hold(writer)
    grouped = [
        asyncio.create_task(
            writer.apply(OpRows.positional(row(f"k{n}"), then_all=kinds_of, then_arg=f"k{n}"))
        )
        for n in range(3)
    ]
    alone = asyncio.create_task(writer.apply(OpRows({"kind": "plain"}, then=lambda c: "own")))
    fails = [
        asyncio.create_task(
            writer.apply(OpRows.positional(row(f"b{n}"), then_all=broken, then_arg=n))
        )
        for n in range(2)
    ]
    await asyncio.sleep(0)
    blocker.release()
    await held
    # one read for the three, after all six rows were committed; answers in order
    assert await asyncio.gather(*grouped) == [("k0", True), ("k1", True), ("k2", True)]
    assert calls == [["k0", "k1", "k2"]]
    assert await alone == "own"
    for task in fails:  # their read failed: they alone hear of it (their rows were written)
        with pytest.raises(StoreError, match="nope"):
            await task
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM op_log").fetchone()[0] == 6


async def test_a_then_all_of_one_write_alone_reads_for_it_alone(
    writer: GroupCommitWriter, db: str
) -> None:
    """A write that went on its own (a mixed batch's transaction, or one by one after a
    failed batch) reads with a list of one."""
    await writer.run(create_table)
    await make_op_log(writer)
    blocker = Blocker()
    held = await blocker.hold(writer)
    op = asyncio.create_task(writer.run(insert(1)))  # an op first: the batch is a transaction
    await asyncio.sleep(0)
    row = ("a",) + (None,) * (len(OP_LOG_COLUMNS) - 1)
    read = asyncio.create_task(
        writer.apply(OpRows.positional(row, then_all=lambda c, args: [args], then_arg="x"))
    )
    await asyncio.sleep(0)
    blocker.release()
    await held
    assert await op == 10
    assert await read == ["x"]


def test_a_positional_row_has_every_column() -> None:
    with pytest.raises(ValueError, match="values"):
        OpRows.positional(("step", "run"))


async def test_then_inside_a_mixed_batch_sees_the_rows_before_the_commit(
    writer: GroupCommitWriter, db: str
) -> None:
    await writer.run(create_table)
    await make_op_log(writer)
    blocker = Blocker()
    held = await blocker.hold(writer)
    op = asyncio.create_task(writer.run(insert(1)))  # an op first: the batch is a transaction
    await asyncio.sleep(0)
    rows_then = asyncio.create_task(
        writer.apply(
            OpRows(
                {"kind": "a"},
                then=lambda conn: conn.execute("SELECT kind FROM op_log").fetchall(),
            )
        )
    )
    await asyncio.sleep(0)
    blocker.release()
    await held
    assert await op == 10
    assert await rows_then == [("a",)]
    assert rows(db) == [1]


def test_the_wal_shrinks_back_to_its_limit_after_a_long_read_held_it(tmp_path: Path) -> None:
    path = str(tmp_path / "wal.db")
    limit = 256 * 1024
    writer = connect(path, wal_size_limit=limit)
    writer.execute("CREATE TABLE t (x BLOB)")
    reader = connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # a snapshot: no checkpoint restarts
    for _ in range(200):
        writer.execute("INSERT INTO t VALUES (randomblob(8192))")
    wal = Path(path + "-wal")
    assert wal.stat().st_size > 4 * limit  # grew past the limit while the read was open
    reader.execute("COMMIT")
    writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    writer.execute("INSERT INTO t VALUES (1)")  # restarts the WAL, cutting it to the limit
    assert wal.stat().st_size <= limit


def _sqlite_memory_used() -> int:
    """Bytes SQLite holds in this process (all connections): sqlite3_memory_used()."""
    import _sqlite3
    import ctypes

    lib = ctypes.CDLL(_sqlite3.__file__)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


def _statements_held(tmp_path: Path, cached_statements: int) -> int:
    """What 80 differently sized multi-row INSERTs leave SQLite holding on one connection,
    as the writer's op_log INSERTs of 1 … 80 rows would."""
    conn = connect(str(tmp_path / f"cache-{cached_statements}.db"),
                   cached_statements=cached_statements)  # fmt: skip
    conn.execute("CREATE TABLE t (a, b, c, d)")
    conn.execute("CREATE TRIGGER t_log AFTER INSERT ON t BEGIN SELECT NEW.a + NEW.b; END")
    before = _sqlite_memory_used()
    for rows in range(1, 81):
        conn.execute("INSERT INTO t VALUES " + ", ".join(["(?, ?, ?, ?)"] * rows), [1] * 4 * rows)
    held = _sqlite_memory_used() - before
    conn.close()
    return held


def test_the_writer_keeps_few_prepared_statements(tmp_path: Path, db: str) -> None:
    bounded = _statements_held(tmp_path, group_commit.WRITER_CACHED_STATEMENTS)
    default = _statements_held(tmp_path, 128)
    assert bounded < default / 2  # the sizes not used lately are not kept prepared
    seen: list[int] = []
    real_connect = group_commit.connect

    def spy(path: str, **kwargs: Any) -> sqlite3.Connection:
        seen.append(kwargs.get("cached_statements", 128))
        return real_connect(path, **kwargs)

    group_commit.connect = spy  # type: ignore[assignment]
    try:
        w = GroupCommitWriter(db)
        w.start()
        w.stop()
    finally:
        group_commit.connect = real_connect  # type: ignore[assignment]
    assert seen == [group_commit.WRITER_CACHED_STATEMENTS]


async def test_a_relative_path_is_the_same_file_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite resolved ``./h.db`` when it opened it: a handler's chdir later must not make
    that file look deleted (every write a 503 for good)."""
    monkeypatch.chdir(tmp_path)
    writer = GroupCommitWriter("./h.db")
    writer.start()
    try:
        (tmp_path / "sub").mkdir()
        monkeypatch.chdir(tmp_path / "sub")
        assert writer.file_problem() is None
        await writer.run(create_table)
    finally:
        writer.stop()


async def test_a_file_that_cannot_be_checked_takes_no_write_and_the_writer_lives(
    tmp_path: Path,
) -> None:
    """Its directory replaced by a plain file: stat fails with ENOTDIR. Each write is a
    StoreError; none hangs, and the writer thread does not die of it."""
    folder = tmp_path / "d"
    folder.mkdir()
    writer = GroupCommitWriter(str(folder / "h.db"))
    writer.start()
    try:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
        folder.write_text("now a file")
        for _ in range(2):
            with pytest.raises(StoreError, match="cannot be checked"):
                await asyncio.wait_for(writer.run(create_table), 5)
    finally:
        writer.stop()
