"""Failed-login lockout counted by every HTTP process of one ``serve`` together.

With ``[server] processes = N``, the kernel hands each connection to any one of the
processes; counted apart, a client would get N times ``max_failed_logins`` guesses a
window. Here the processes count in one small SQLite file in the serve's shared directory
(the one of its shared metrics, removed when the serve stops), with the semantics of
``hookline.web.lockout.LoginLimiter``: a sliding window over the client's latest
failures, cleared by a success. The file is not hookline's database: nothing in it needs
to survive a crash (``synchronous = OFF``), and an attempt never writes to the store.

A check is one short statement on the event loop, a failure two (~3 and ~23 µs with
100,000 failures kept; SQLite's file lock is held inside one ``sqlite3_step``, without
the GIL). Times are ``time.monotonic()``, one clock for every process of a machine. Each
process also counts on its own: a call the file cannot answer (busy past
``BUSY_TIMEOUT_MS``, or failing: a full temporary directory) is answered from that count,
and the next call tries the file again. Between one process's check and its record of a
failure, another process may check too: a burst spread over P processes can get up to
P - 1 guesses past the limit, once.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable

from hookline.shared_dir import process_id
from hookline.web.lockout import LoginLimiter

log = logging.getLogger("hookline.web")

FILE_NAME = "logins.sqlite"  # not *.db: prometheus_client reads every *.db file there
#: At most this many failures are kept (the newest): with the indexes ~90 bytes each, a
#: flood of addresses cannot grow the file past ~9 MiB, ~13 with its WAL
#: (``bench/lockout_cost.py``).
MAX_ROWS = 100_000
#: How long a statement waits for another process's (microseconds-long) write before this
#: call is answered from the process's own count: it waits on the event loop.
BUSY_TIMEOUT_MS = 100

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS failures (client TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS failures_client ON failures (client, at)",
    "CREATE INDEX IF NOT EXISTS failures_at ON failures (at)",
)


class SharedLoginLimiter:
    def __init__(
        self,
        directory: str,
        max_failures: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self._path = os.path.join(directory, FILE_NAME)
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._max_rows = max_rows
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        # This process's own count, kept as well: it answers a call the file cannot (a
        # busy or failing file), and the next call tries the file again.
        self._own = LoginLimiter(max_failures, window, clock=clock)
        self._failing = False

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again; None while it is not locked out."""
        now = self._clock()
        try:
            row = (
                self._db()
                .execute(
                    "SELECT count(*), min(at) FROM (SELECT at FROM failures "
                    "WHERE client = ? AND at > ? ORDER BY at DESC LIMIT ?)",
                    (client, now - self._window, self._max),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            self._failed_file(exc)
            return self._own.retry_after(client)
        self._failing = False
        count, oldest = row
        if count < self._max:
            return None
        return max(1, math.ceil(float(oldest) + self._window - now))

    def failed(self, client: str) -> None:
        self._own.failed(client)
        now = self._clock()
        try:
            conn = self._db()
            cur = conn.execute("INSERT INTO failures VALUES (?, ?)", (client, now))
            newest = cur.lastrowid or 0
            # what left the window, for every client, and the oldest beyond the bound: two
            # index ranges (failures_at, the rowid), usually empty
            conn.execute(
                "DELETE FROM failures WHERE at <= ? OR rowid <= ?",
                (now - self._window, newest - self._max_rows),
            )
        except sqlite3.Error as exc:
            self._failed_file(exc)

    def succeeded(self, client: str) -> None:
        self._own.succeeded(client)
        try:
            self._db().execute("DELETE FROM failures WHERE client = ?", (client,))
        except sqlite3.Error as exc:
            self._failed_file(exc)

    def _db(self) -> sqlite3.Connection:
        """This process's connection (a forked process opens its own)."""
        if self._conn is None or self._pid != process_id():
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn, self._pid = conn, process_id()
        return self._conn

    def _failed_file(self, error: sqlite3.Error) -> None:
        if not self._failing:  # once per streak of failures
            log.warning(
                "the shared failed-login count failed; this process answers from its own",
                extra={"error": str(error)},
            )
        self._failing = True
        if self._conn is not None and self._pid == process_id():
            self._conn.close()
        self._conn = None  # the next call opens it again
