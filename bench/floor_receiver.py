"""The floor: the least a durable Stripe receiver can do on uvicorn + SQLite.

Not a product, a measuring stick for "share of bare uvicorn+Starlette": it does only what
no durable receiver can skip, each the cheapest way this stack allows, and nothing else
hookline does (no dedupe answer, no header storage or redaction, no event id of its own,
no log line, no metrics, no limits against hostile clients, no runs):

- no framework: a raw ASGI callable (cheaper than the Starlette route bare answers from);
- read the body (as ``bare_receiver`` does);
- verify ``Stripe-Signature`` (one ``v1``, HMAC-SHA256 keyed with the whole ``whsec_``
  string, constant-time comparison, 300 s tolerance);
- parse the JSON body for ``id`` and ``type`` (orjson);
- store it durably before the answer: a writer thread per process takes everything queued,
  ``INSERT OR IGNORE`` in one transaction, one ``COMMIT`` (WAL, ``synchronous=FULL``, so
  fsync), then wakes the waiting requests with one ``call_soon_threadsafe`` per batch.

``FLOOR_INLINE=1``: the commit on the event loop itself, no writer thread (``InlineWriter``).

``bench/ingest.py --floor`` runs it with as many processes as hookline (``uvicorn --workers
N``, all sharing one database file), beside bare in the same run::

    FLOOR_DB=/tmp/f.db FLOOR_SECRET=whsec_... \\
        uvicorn floor_receiver:app --app-dir bench --port 8500 --workers 2 --no-access-log
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

DB_PATH = os.environ.get("FLOOR_DB", "floor.db")
SECRET = os.environ.get("FLOOR_SECRET", "").encode()
TOLERANCE = 300
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

Pending = tuple[tuple[str, str, float, bytes], asyncio.Future[bool], asyncio.AbstractEventLoop]


class Writer:
    """One thread, one connection: group commit of whatever is queued when it looks."""

    def __init__(self, path: str) -> None:
        self.queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self.conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )  # the timeout covers the set-up, where the other process may hold the lock
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT NOT NULL, "
            "received_at REAL NOT NULL, payload BLOB NOT NULL)"
        )
        self.conn.execute("PRAGMA busy_timeout = 0")  # then a short spin, as hookline's writer
        self.thread = threading.Thread(target=self._run, name="floor-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (first := self.queue.get()) is not None:
            batch = [first]
            with contextlib.suppress(queue.Empty):
                while (more := self.queue.get_nowait()) is not None:
                    batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[Pending]) -> None:
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:  # the other process holds the write lock
                time.sleep(0.0002)
        self.conn.executemany(
            "INSERT OR IGNORE INTO events (id, type, received_at, payload) VALUES (?, ?, ?, ?)",
            [row for row, _, _ in batch],
        )
        self.conn.execute("COMMIT")
        self._wake(batch)

    def _wake(self, batch: list[Pending]) -> None:
        batch[0][2].call_soon_threadsafe(_resolve, [future for _, future, _ in batch])

    def submit(self, item: Pending) -> None:
        self.queue.put(item)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.conn.close()


class InlineWriter(Writer):
    """``FLOOR_INLINE=1``: no thread. What one turn of the event loop received is committed
    on the loop itself (blocking it for the fsync): no GIL handoff, no thread wake-up."""

    def __init__(self, path: str) -> None:
        self.pending: list[Pending] = []
        super().__init__(path)

    def _run(self) -> None:  # the base class's thread has nothing to do
        return

    def submit(self, item: Pending) -> None:
        if not self.pending:
            item[2].call_soon(self._flush)
        self.pending.append(item)

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        self._commit(batch)

    def _wake(self, batch: list[Pending]) -> None:
        _resolve([future for _, future, _ in batch])

    def close(self) -> None:
        self.conn.close()


def _resolve(futures: list[asyncio.Future[bool]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(True)


def verified(header: str, body: bytes) -> bool:
    timestamp, signature = "", ""
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1" and not signature:
            signature = value
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE:
        return False
    expected = hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


async def webhook(scope: Scope, receive: Receive, send: Send, writer: Writer) -> None:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    header = next((v for k, v in scope["headers"] if k == b"stripe-signature"), b"")
    if not verified(header.decode("latin-1"), body):
        await _answer(send, 400, b'{"error":"invalid_signature"}')
        return
    event = orjson.loads(body)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()
    writer.submit(((event["id"], event["type"], time.time(), body), future, loop))
    await future
    await _answer(send, 200, b'{"eventId":"%s"}' % event["id"].encode())


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class App:
    """Raw ASGI, cheaper than a Starlette route: the floor takes every shortcut."""

    writer: Writer | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            self.writer = (InlineWriter if os.environ.get("FLOOR_INLINE") else Writer)(DB_PATH)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            self.writer.close()
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["path"] == "/webhooks/stripe" and scope["method"] == "POST":
            assert self.writer is not None
            await webhook(scope, receive, send, self.writer)
        else:
            await _answer(send, 200 if scope["path"] == "/readyz" else 404, b"{}")


app = App()
