from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg import pg_empty_url, pg_template, pg_url
from tests.support.server import HooklineProcess, base_config

__all__ = ["pg_empty_url", "pg_template", "pg_url"]  # fixtures shared by every layer


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hookline.db'}"


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[HooklineProcess]:
    """A running ``hookline serve`` on SQLite with no handlers and no workers."""
    proc = HooklineProcess(tmp_path, base_config(sqlite_url)).start()
    yield proc
    proc.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend, for end-to-end tests that run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hookline.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
