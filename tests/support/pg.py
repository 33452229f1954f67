"""PostgreSQL databases for tests: a template migrated once per session, cloned per test.

The server is ``HOOKLINE_TEST_POSTGRES_URL`` (default: trust auth on 127.0.0.1:5432).
When it is unreachable the PostgreSQL tests are skipped — except under ``CI=true``,
where they fail: CI must never pass by silently testing SQLite alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from hookline.store.postgres import PostgresStore

ADMIN_URL = os.environ.get(
    "HOOKLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url(name: str) -> str:
    """``ADMIN_URL`` with another database name."""
    base, _, _db = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)


def _drop(name: str) -> None:
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


async def _migrate(url: str) -> None:
    store = PostgresStore(url)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """The name of a database migrated to the current schema, to clone per test."""
    try:
        conn = _admin()
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is unreachable at {ADMIN_URL}: {exc}".strip()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    # a name per session: concurrent test sessions on one server never clone each other's
    name = f"hookline_template_{secrets.token_hex(4)}"
    with conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        asyncio.run(_migrate(database_url(name)))
        yield name
    finally:
        _drop(name)


@contextlib.contextmanager
def cloned_database(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (its URL), dropped afterwards; for fixtures of
    any scope."""
    name = f"hookline_test_{secrets.token_hex(6)}"
    with _admin() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(pg_template)
            )
        )
    try:
        yield database_url(name)
    finally:
        _drop(name)


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    with cloned_database(pg_template) as url:
        yield url


@pytest.fixture
def pg_empty_url(pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database with no schema at all."""
    name = f"hookline_test_{secrets.token_hex(6)}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        _drop(name)
