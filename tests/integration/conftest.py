"""Stores on real databases: a fresh SQLite file, or a fresh PostgreSQL database, per test.

PostgreSQL databases are cloned from a template migrated once per session
(``CREATE DATABASE ... TEMPLATE``), which is much faster than migrating each one.
The server is ``HOOKLINE_TEST_POSTGRES_URL`` (default: trust auth on 127.0.0.1:5432).
When it is unreachable the PostgreSQL tests are skipped — except under ``CI=true``,
where they fail: CI must never pass by silently testing SQLite alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hookline.store import Store, open_store

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each backend (PostgreSQL: already migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hookline.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def open_another(store_url: str) -> AsyncIterator[OpenStore]:
    """Open more stores on the same database (another process, another machine)."""
    opened: list[Store] = []

    async def factory() -> Store:
        store = open_store(store_url)
        await store.open()
        opened.append(store)
        await store.migrate()
        return store

    yield factory
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def store(open_another: OpenStore) -> Store:
    """A migrated store on a fresh database, parametrized over both backends."""
    return await open_another()
