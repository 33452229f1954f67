"""The group-commit writer on a file system that fills up (a real tmpfs): every caller of a
batch that could not be written gets an error (never a result for a write that is not on
disk), the writer reports the storage fault, and it writes again once space returns."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from hookline.errors import StoreError
from hookline.store.group_commit import GroupCommitWriter, storage_fault
from tests.support.faults import fill, small_disk


def insert(n: int) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO items VALUES (?, randomblob(20000))", (n,))
        return n

    return op


def stored(db: Path) -> set[int]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT n FROM items")}


def test_a_full_disk_fails_the_whole_batch_and_the_writer_recovers(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        db = disk / "writer.db"
        writer = GroupCommitWriter(str(db))
        writer.start()
        try:

            async def scenario() -> None:
                await writer.run(
                    lambda c: c.execute("CREATE TABLE items (n INTEGER PRIMARY KEY, b BLOB)")
                )
                assert await writer.run(insert(0)) == 0
                filler = fill(disk)
                outcomes = await asyncio.gather(
                    *(writer.run(insert(n)) for n in range(1, 41)), return_exceptions=True
                )
                failed = [o for o in outcomes if isinstance(o, StoreError)]
                acked = {o for o in outcomes if isinstance(o, int)}
                assert failed, outcomes
                assert all(storage_fault(e) for e in failed)
                assert len(failed) + len(acked) == 40
                assert writer.fault is not None and "full" in writer.fault
                assert stored(db) == {0} | acked  # nothing reported written that is not

                filler.unlink()
                assert await writer.run(insert(100)) == 100
                assert writer.fault is None
                assert stored(db) == {0, 100} | acked

            asyncio.run(scenario())
        finally:
            writer.stop()
