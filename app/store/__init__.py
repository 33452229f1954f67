"""Storage: the ``Store`` interface and its SQLite and PostgreSQL implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hookline.store.base import Store

if TYPE_CHECKING:
    from hookline.config import StorageConfig


def open_store(storage: StorageConfig | str) -> Store:
    """The store for ``[storage]`` (or just its url); not yet opened: ``await store.open()``."""
    url = storage if isinstance(storage, str) else storage.url
    if url.startswith("sqlite:"):
        from hookline.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from hookline.store.postgres import PostgresStore

        if isinstance(storage, str):
            return PostgresStore(url)
        return PostgresStore(
            url,
            pool_size=storage.pool_size,
            statement_timeout=storage.statement_timeout_seconds,
        )
    raise ValueError(f"unsupported storage url scheme: {url.split(':', 1)[0]}")


__all__ = ["Store", "open_store"]
