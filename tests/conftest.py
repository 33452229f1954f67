from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import HooklineProcess, base_config


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hookline.db'}"


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[HooklineProcess]:
    """A running ``hookline serve`` on SQLite with no handlers and no workers."""
    proc = HooklineProcess(tmp_path, base_config(sqlite_url)).start()
    yield proc
    proc.stop()
