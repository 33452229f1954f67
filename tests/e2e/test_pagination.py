"""Cursor pagination of ``GET /admin/events`` while events keep arriving.

1,000 events are stored, then paged 50 at a time while a background thread posts
more. Between two pages at least one new event is acknowledged (the pager waits for
it), so the pages really interleave with writes. Every original event must be seen
exactly once, and no new event may show up once paging has reached the originals:
pages go newest first by cursor, and a new event is always newer than the cursor.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import signing
from tests.support.server import HooklineProcess, base_config

ORIGINALS = 1000
PAGE = 50


def post(client: httpx.Client, server: HooklineProcess) -> str:
    body, headers = signing.stripe()
    response = client.post(f"{server.url}/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["duplicate"] is False
    return str(answer["id"])


class Poster(threading.Thread):
    """Posts new events until stopped; ``wait_for_more`` blocks until one more is stored."""

    def __init__(self, server: HooklineProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.ids: list[str] = []
        self.stop = threading.Event()
        self.changed = threading.Condition()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                event_id = post(client, self.server)
                with self.changed:
                    self.ids.append(event_id)
                    self.changed.notify_all()

    def wait_for_more(self, than: int) -> int:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.ids) > than, timeout=30)
            return len(self.ids)


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[HooklineProcess]:
    """``hookline serve`` without handlers or workers, on each backend."""
    proc = HooklineProcess(tmp_path, base_config(db_url)).start()
    yield proc
    proc.stop()


def test_pages_have_no_gap_and_no_repeat_while_events_arrive(server: HooklineProcess) -> None:
    limits = httpx.Limits(max_connections=16)
    with httpx.Client(timeout=30, limits=limits) as client, ThreadPoolExecutor(16) as pool:
        originals = list(pool.map(lambda _: post(client, server), range(ORIGINALS)))
    assert len(set(originals)) == ORIGINALS

    poster = Poster(server)
    poster.start()
    seen: list[str] = []
    pages = 0
    try:
        with server.admin() as admin:
            posted = poster.wait_for_more(0)
            cursor: str | None = None
            while True:
                params: dict[str, str | int] = {"limit": PAGE}
                if cursor:
                    params["cursor"] = cursor
                response = admin.get("/admin/events", params=params)
                assert response.status_code == 200, response.text
                page = response.json()
                assert len(page["items"]) <= PAGE
                seen += [item["id"] for item in page["items"]]
                pages += 1
                cursor = page["nextCursor"]
                if cursor is None:
                    break
                posted = poster.wait_for_more(posted)  # a write lands between every two pages
    finally:
        poster.stop.set()
        poster.join(timeout=30)
    assert not poster.is_alive()

    assert len(seen) == len(set(seen)), "an event was listed twice"
    original = set(originals)
    listed = [event_id for event_id in seen if event_id in original]
    assert len(listed) == ORIGINALS and set(listed) == original, "a gap"
    first = next(n for n, event_id in enumerate(seen) if event_id in original)
    assert all(event_id in original for event_id in seen[first:]), "a new event in a later page"
    assert set(seen[:first]) <= set(poster.ids)
    assert pages >= ORIGINALS // PAGE
    assert len(poster.ids) >= pages  # events really arrived while paging
