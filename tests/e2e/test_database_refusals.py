"""``hookline serve``, ``hookline worker`` and ``hookline migrate`` refuse a database they
must not touch — not a database at all, another application's, or migrated by a newer
hookline — with one clear line and exit status 2, before anything starts or is written."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.support.cli import hookline
from tests.support.server import base_config


def write_config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "hookline.toml"
    path.write_text(base_config(db_url))
    return path


def refused(config: Path, command: str = "serve") -> str:
    result = (
        hookline(command, "--config", config, "--port", "1")
        if command == "serve"
        else (hookline(command, "--config", config))
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("hookline: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_random_bytes_are_refused_and_left_alone(tmp_path: Path, command: str) -> None:
    db = tmp_path / "hookline.db"
    junk = os.urandom(64 * 1024)
    db.write_bytes(junk)
    line = refused(write_config(tmp_path, f"sqlite:///{db}"), command)
    assert "cannot use the database" in line and "not a SQLite database" in line
    assert db.read_bytes() == junk
    assert (
        not (tmp_path / "hookline.db-wal").exists()
        or not (tmp_path / "hookline.db-wal").stat().st_size
    )


def test_another_applications_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT)")
    line = refused(write_config(tmp_path, f"sqlite:///{db}"))
    assert "is not a hookline database" in line and "events, users" in line
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"users", "events"}  # nothing created


def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "hookline.db"
    config = write_config(tmp_path, f"sqlite:///{db}")
    assert hookline("migrate", "--config", config).returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 0)")
    line = refused(config)
    assert "version 999, newer than this hookline knows" in line
    assert "version 999" in refused(config, "worker")


@pytest.mark.postgres
def test_postgres_tables_of_hookline_names_without_its_schema_are_refused(
    tmp_path: Path, pg_empty_url: str
) -> None:
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id serial PRIMARY KEY)")
        conn.execute("CREATE TABLE customers (id serial PRIMARY KEY)")  # left alone anyway
    line = refused(write_config(tmp_path, pg_empty_url))
    assert "not hookline's" in line and "(events)" in line


@pytest.mark.postgres
def test_a_newer_postgres_schema_is_refused(tmp_path: Path, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 0)")
    assert "version 999, newer than this hookline knows" in refused(write_config(tmp_path, pg_url))


@pytest.mark.postgres
def test_a_store_command_on_an_unmigrated_postgres_database_says_to_migrate(
    tmp_path: Path, pg_empty_url: str
) -> None:
    result = hookline("events", "list", "--config", write_config(tmp_path, pg_empty_url))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "schema not migrated" in result.stderr and "run `hookline migrate`" in result.stderr
    assert "LINE 1" not in result.stderr  # no SQL echoed
