"""Helpers to send signed webhooks to a test server and wait on the admin API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from hookline.providers import StripeProvider
from tests.support.server import STRIPE_SECRET, HooklineProcess

_stripe = StripeProvider([STRIPE_SECRET])


def stripe_body(event_id: str, event_type: str, data: dict[str, Any] | None = None) -> bytes:
    return json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "data": data or {}}
    ).encode()


def post_stripe(
    server: HooklineProcess,
    event_id: str,
    event_type: str,
    data: dict[str, Any] | None = None,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    body = stripe_body(event_id, event_type, data)
    headers = {"content-type": "application/json", **_stripe.sign(body, time.time())}
    poster = client or httpx
    response = poster.post(f"{server.url}/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def event_detail(admin: httpx.Client, event_id: str) -> dict[str, Any]:
    response = admin.get(f"/admin/events/{event_id}")
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail


def wait_status(
    admin: httpx.Client, event_id: str, status: str, timeout: float = 30.0
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        detail = event_detail(admin, event_id)
        return detail if detail["status"] == status else None

    result: dict[str, Any] = wait_for(check, timeout, what=f"event {event_id} to be {status}")
    return result


def all_events(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/admin/events", params=query).json()
        items += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            return items
