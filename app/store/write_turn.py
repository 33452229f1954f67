"""Whose turn it is to write an SQLite file: a blocking file lock beside the database.

SQLite's write lock cannot be waited on: a writer that finds it taken must try again,
and hookline's writers retry every ~0.2 ms (SQLite's own busy handler sleeps up to
100 ms: ack latency). With several processes on one file — P HTTP processes and the
workers — those retries were a few per batch, each a failed lock attempt, a Python
exception and a sleep: ~80 µs of CPU per batch, and the lock lay idle until the next try.

So every hookline writer first takes ``<database>-writers.lock`` with ``flock`` (the call
blocks without the GIL, and the kernel hands the lock to a waiter as soon as it is let
go), writes its batch, and lets it go. SQLite's lock stays the one that guarantees
anything: a writer that does not take the turn (a previous version during an upgrade, a
CLI command) is still waited for by the retries, as before. Nobody holds SQLite's write
lock while waiting for a turn, so the two locks cannot deadlock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


class WriteTurn:
    """Opened in the thread that writes (a forked child must not share the parent's open
    file: ``flock`` locks belong to it, not to a process)."""

    def __init__(self, database: str) -> None:
        self._fd: int | None = None
        if database != ":memory:" and not database.startswith("file:"):
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
            with contextlib.suppress(OSError):  # no turn (e.g. a read-only directory)
                self._fd = os.open(database + "-writers.lock", flags, 0o600)

    @contextlib.contextmanager
    def taken(self) -> Iterator[None]:
        fd = self._fd
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
