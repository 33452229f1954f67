"""Store failures reach an admin client as 503 + Retry-After, never 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hookline.config import Settings
from hookline.errors import StoreError
from hookline.pipeline import Registry
from hookline.store.sqlite import SQLiteStore
from hookline.web.app import create_app


class DownStore(SQLiteStore):
    async def list_events(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError("OperationalError: disk I/O error")


async def test_a_store_failure_answers_503(tmp_path: Path) -> None:
    settings = Settings.model_validate({"admin": {"token": "t0ken-for-tests"}})
    store = DownStore(f"sqlite:///{tmp_path / 'h.db'}")
    await store.open()
    app = create_app(settings, store, Registry(), own_store=False)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get(
                "/admin/events", headers={"Authorization": "Bearer t0ken-for-tests"}
            )
    finally:
        await store.close()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "storage_unavailable"
    assert "disk I/O" not in response.text  # details stay in the log
