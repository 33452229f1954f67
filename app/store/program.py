"""Store operations written once, run on either dialect.

An operation is a *program*: a generator that yields ``Sql`` (the name of a query and its
parameters) and is sent back the rows that query returned. It holds the logic (what to
insert, what a conflict means, when to resume) and no connection; a driver runs it on one:

- ``run_sync``: on the SQLite writer thread, inside the group-commit transaction;
- ``run_async``: on a PostgreSQL connection inside one transaction, or on the SQLite reader.

The queries themselves sit in each dialect's ``queries.sql`` under the same names, with named
parameters (``:name`` for SQLite, ``%(name)s`` for PostgreSQL). A query whose text is empty
does nothing in that dialect: SQLite has no ``NOTIFY``, and its writer already holds the
write lock that PostgreSQL takes with ``FOR NO KEY UPDATE``. Where dialects differ beyond
that, docs/architecture.md says why.

A program may run more than once for one call (a SQLite batch retried after another op
failed, a PostgreSQL deadlock retried): the driver always starts a fresh generator, and a
program acts only through the statements it yields.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from hookline.sql import queries

T = TypeVar("T")
Row = Sequence[Any]
Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Sql:
    """One named query of the dialect's ``queries.sql`` and its parameters."""

    name: str
    params: Params = field(default_factory=dict)


Program = Generator[Sql, list[Row], T]


@cache
def statements(dialect: str) -> Mapping[str, str]:
    """The dialect's named queries; one that holds nothing but comments becomes ``""``."""
    return {
        name: "" if all(not line.strip() or line.lstrip().startswith("--")
                        for line in text.splitlines()) else text
        for name, text in queries(dialect).items()
    }  # fmt: skip


def run_sync(program: Program[T], conn: sqlite3.Connection, queries: Mapping[str, str]) -> T:
    """Run ``program`` on a SQLite connection (the caller owns the transaction)."""
    try:
        statement = next(program)
        while True:
            text = queries[statement.name]
            rows: list[Row] = conn.execute(text, statement.params).fetchall() if text else []
            statement = program.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


Execute = Callable[[str, Params], Awaitable[list[Row]]]


async def run_async(program: Program[T], execute: Execute, queries: Mapping[str, str]) -> T:
    """Run ``program`` with an async ``execute(sql, params) -> rows``."""
    try:
        statement = next(program)
        while True:
            text = queries[statement.name]
            rows = await execute(text, statement.params) if text else []
            statement = program.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result
