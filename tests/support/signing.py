"""Signed requests for the test sources of ``tests.support.server.base_config``.

Each helper returns ``(body, headers)`` ready for ``httpx``: the body as raw bytes
and the headers a real sender would add, signed with the test secrets through
the providers' own ``sign()``. ``list_events`` reads back everything stored.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from hookline.providers import (
    GitHubProvider,
    HmacProvider,
    SlackProvider,
    StandardProvider,
    StripeProvider,
)
from tests.support.server import (
    GITHUB_SECRET,
    ROOT,
    SHOPIFY_SECRET,
    SLACK_SECRET,
    STANDARD_SECRET,
    STRIPE_SECRET,
)

FIXTURES = ROOT / "fixtures"
Signed = tuple[bytes, dict[str, str]]

STRIPE = StripeProvider([STRIPE_SECRET])
GITHUB = GitHubProvider([GITHUB_SECRET])
STANDARD = StandardProvider([STANDARD_SECRET])
SHOPIFY = HmacProvider(
    [SHOPIFY_SECRET],
    signature_header="X-Shopify-Hmac-Sha256",
    encoding="base64",
    id_header="X-Shopify-Webhook-Id",
    type_header="X-Shopify-Topic",
)
SLACK = SlackProvider([SLACK_SECRET])
FORM = "application/x-www-form-urlencoded"

#: Lower-case names of the headers that carry a signature, per test source.
SIGNATURE_HEADERS = {
    "stripe": ("stripe-signature",),
    "github": ("x-hub-signature-256", "x-hub-signature"),
    "acme": ("webhook-signature",),
    "shopify": ("x-shopify-hmac-sha256",),
    "slack": ("x-slack-signature",),
}


def new_id(prefix: str = "evt_test_") -> str:
    return prefix + uuid.uuid4().hex


def as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    return json.dumps(payload).encode()


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def stripe(payload: Any = None, *, now: float | None = None) -> Signed:
    """A Stripe delivery; without ``payload`` a fresh snapshot event."""
    if payload is None:
        payload = {"id": new_id(), "object": "event", "type": "invoice.paid", "data": {}}
    body = as_bytes(payload)
    headers = {"Content-Type": "application/json; charset=utf-8", **STRIPE.sign(body, _now(now))}
    return body, headers


def github(
    payload: Any = None, *, event: str = "pull_request", delivery: str | None = None
) -> Signed:
    if payload is None:  # a body of its own, as GitHub's are (the same body is a replay)
        payload = {"action": "opened", "number": 1, "pull_request": {"id": uuid.uuid4().int >> 80}}
    body = as_bytes(payload)
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        **GITHUB.sign(body, 0),
    }
    return body, headers


def standard(payload: Any = None, *, msg_id: str | None = None, now: float | None = None) -> Signed:
    if payload is None:
        payload = {"type": "invoice.paid", "data": {"id": new_id("inv_")}}
    body = as_bytes(payload)
    msg_id = msg_id or new_id("msg_")
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        **STANDARD.sign(body, _now(now), msg_id=msg_id),
    }
    return body, headers


def shopify(
    payload: Any = None, *, topic: str = "orders/create", webhook_id: str | None = None
) -> Signed:
    if payload is None:  # a body of its own, as Shopify's are (the same body is a replay)
        payload = {"id": uuid.uuid4().int >> 80, "email": "a@example.com"}
    body = as_bytes(payload)
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        **SHOPIFY.sign(body, 0),
    }
    return body, headers


def slack(
    payload: Any = None, *, now: float | None = None, content_type: str = "application/json"
) -> Signed:
    """A Slack request; without ``payload`` a fresh Events API ``event_callback``."""
    if payload is None:
        payload = {
            "type": "event_callback",
            "event_id": new_id("Ev"),
            "event": {"type": "app_mention", "text": "hi"},
        }
    body = as_bytes(payload)
    return body, {"Content-Type": content_type, **SLACK.sign(body, _now(now))}


SIGNERS = {
    "stripe": stripe,
    "github": github,
    "acme": standard,
    "shopify": shopify,
    "slack": slack,
}


def fixture(relative: str) -> tuple[str, Signed]:
    """A captured fixture (``fixtures/<relative>``), re-signed with the test secrets now.

    Its own signature headers are dropped; the other captured headers are kept.
    """
    data = json.loads((FIXTURES / relative).read_text("utf-8"))
    source: str = data["source"]
    body = data["body"].encode("utf-8")
    drop = {*SIGNATURE_HEADERS[source], "webhook-timestamp", "x-slack-request-timestamp"}
    headers = {k: v for k, v in data["headers"].items() if k.lower() not in drop}
    if source == "stripe":
        headers.update(STRIPE.sign(body, time.time()))
    elif source == "github":
        headers.update(GITHUB.sign(body, 0))
    elif source == "acme":
        headers.update(STANDARD.sign(body, time.time(), msg_id=headers["webhook-id"]))
    elif source == "shopify":
        headers.update(SHOPIFY.sign(body, 0))
    elif source == "slack":
        headers.update(SLACK.sign(body, time.time()))
    else:  # pragma: no cover - a fixture of a source the test config lacks
        raise ValueError(f"no test source {source!r}")
    return source, (body, headers)


def list_events(admin: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Every stored event summary, newest first, paging through ``nextCursor``."""
    items: list[dict[str, Any]] = []
    query: dict[str, str] = {"limit": "500", **params}
    while True:
        response = admin.get("/admin/events", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        if page["nextCursor"] is None:
            return items
        query["cursor"] = page["nextCursor"]
