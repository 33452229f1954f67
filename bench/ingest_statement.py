"""What storing a batch of webhooks costs the SQLite writer thread, and what its statements hold.

Times, on one thread with nothing else running (``synchronous = OFF``: CPU, not the disk),
two ways of writing batches of ``--batch`` events with 0, 1 and 2 runs each into a migrated
file: the Python transaction hookline used before migration 0013 (``BEGIN IMMEDIATE``, an
``INSERT`` per event and per run, ``COMMIT``) and the ``ingest_log`` statement it uses now
(``SQLiteStore``'s own rows and read-back). Then prints how much memory SQLite holds for a
prepared ``ingest_log`` and ``op_log`` statement of N rows (``sqlite3_memory_used()``).

    .venv/bin/python bench/ingest_statement.py [--events 6000] [--batch 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import orjson  # noqa: E402

from hookline.store import group_commit  # noqa: E402
from hookline.store.base import NewEvent, NewRun  # noqa: E402
from hookline.store.sqlite import INGEST_LOG, Q, SQLiteStore, _events_new, _ingest_rows  # noqa: E402

BODY = os.urandom(1300).hex().encode()  # 2.6 KB, the size of the ingest bench's events
HEADERS = {"content-type": "application/json", "stripe-signature": "[redacted]"}


async def _migrated(path: str) -> None:
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await store.migrate()
    await store.close()


def _events(first: int, count: int, runs: int) -> list[NewEvent]:
    now = time.time()
    return [
        NewEvent(f"evt_{n}", "stripe", f"p{n}", "t", now, HEADERS, BODY,
                 [NewRun(f"run_{n}_{k}", f"h{k}", 3) for k in range(runs)])
        for n in range(first, first + count)
    ]  # fmt: skip


def _as_transaction(conn: sqlite3.Connection, batch: list[NewEvent]) -> None:
    headers = orjson.dumps(HEADERS).decode()
    conn.execute("BEGIN IMMEDIATE")
    for e in batch:
        conn.execute(Q["insert_event"], (e.id, e.source, e.provider_event_id, e.type,
                     "queued" if e.runs else "unhandled", e.received_at, headers, e.body,
                     e.body_sha256))  # fmt: skip
        for r in e.runs:
            at = e.received_at
            conn.execute(Q["insert_run"], (r.id, e.id, r.handler, 0, r.max_attempts, at,
                                           r.concurrency_key, at, at))  # fmt: skip
    conn.execute("COMMIT")


def _as_statement(conn: sqlite3.Connection, batch: list[NewEvent]) -> None:
    headers = orjson.dumps(HEADERS).decode()
    rows = []
    for e in batch:
        rows += _ingest_rows(e, "queued" if e.runs else "unhandled", headers).rows
    conn.execute(*INGEST_LOG.statement(rows))
    _events_new(conn, [e.id for e in batch])


def _statement_memory(path: str) -> None:
    """On a new connection: each statement prepared afresh (the cache is keyed by its SQL)."""
    conn = group_commit.connect(path, cached_statements=128)
    found = ctypes.util.find_library("sqlite3")
    if found is None:
        print("libsqlite3 not found: statement memory not measured")
        return
    lib = ctypes.CDLL(found)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    for table, sizes in ((INGEST_LOG, (1, 8, 32, 64)), (group_commit.OP_LOG, (1, 8, 32))):
        assert table.pad is not None
        for n in sizes:
            before = lib.sqlite3_memory_used()
            conn.execute(*table.statement([table.pad] * n))  # prepared and kept in the cache
            kib = (lib.sqlite3_memory_used() - before) / 1024
            print(f"a prepared {table.insert_sql.split()[2]} INSERT of {n:>2} rows: {kib:6.0f} KiB")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=6_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        asyncio.run(_migrated(path))
        conn = group_commit.connect(path, cached_statements=128)
        conn.execute("PRAGMA synchronous = OFF")
        ways: dict[str, Callable[[sqlite3.Connection, list[NewEvent]], None]] = {
            "transaction": _as_transaction, "statement": _as_statement,
        }  # fmt: skip
        first = 0
        for runs in (0, 1, 2):
            figures: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(args.rounds):
                for name, write in ways.items():
                    events = _events(first, args.events, runs)
                    first += args.events
                    started = time.process_time()
                    for k in range(0, len(events), args.batch):
                        write(conn, events[k : k + args.batch])
                    spent = time.process_time() - started
                    figures[name].append(spent / args.events * 1e6)
            shown = "   ".join(
                f"{name} {', '.join(f'{v:.1f}' for v in values)}"
                for name, values in figures.items()
            )
            print(f"{runs} runs an event, writer CPU µs an event: {shown}")
        conn.close()
        _statement_memory(path)


if __name__ == "__main__":
    main()
