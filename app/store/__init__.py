"""Storage: the ``Store`` interface and its SQLite and PostgreSQL implementations."""

from __future__ import annotations

from hookline.store.base import Store


def open_store(url: str) -> Store:
    """The store for a ``[storage] url`` (not yet opened: ``await store.open()``)."""
    if url.startswith("sqlite:"):
        from hookline.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from hookline.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported storage url scheme: {url.split(':', 1)[0]}")


__all__ = ["Store", "open_store"]
