"""The database check every long-running command makes before it starts anything.

``hookline serve`` and ``hookline worker`` open the store and apply pending migrations
first. A database hookline must not touch — not a SQLite file at all, damaged, another
application's tables, a schema newer than this code — is refused with one clear line and
exit status 2, like an invalid config: nothing is started, nothing is written. A database
that cannot be reached exits with status 1 (try again later; a supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import sqlite3

from hookline.config import StorageConfig
from hookline.errors import SchemaError, StoreError
from hookline.store import open_store


class UnusableDatabase(Exception):
    """The database is not one hookline may use; ``status`` is the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def prepare_database(storage: StorageConfig) -> int:
    """Open the store, refuse a database hookline must not touch, apply pending migrations;
    return the schema version. Raises ``UnusableDatabase``."""

    async def go() -> int:
        store = open_store(storage)
        await store.open()
        try:
            return await store.migrate()
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except SchemaError as exc:
        raise UnusableDatabase(f"cannot use the database: {exc}", 2) from None
    except StoreError as exc:
        if isinstance(exc.__cause__, sqlite3.DatabaseError) and not isinstance(
            exc.__cause__, sqlite3.OperationalError
        ):  # "database disk image is malformed": damaged, not busy or full
            raise UnusableDatabase(f"cannot use the database: it is damaged ({exc})", 2) from None
        raise UnusableDatabase(f"cannot reach the database: {exc}", 1) from None
