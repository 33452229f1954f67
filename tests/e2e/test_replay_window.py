"""A captured GitHub or Shopify delivery sent again under fresh ids: the id and type headers
are not signed, so within the source's ``replay_window`` the same signed body under another
id is the same event (a duplicate of the first, logged ``replay_suspected``). On both
backends, through a real ``hookline serve``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import signing
from tests.support.server import HooklineProcess, base_config

WINDOW_SECONDS = 2


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[HooklineProcess]:
    config = base_config(db_url)
    # a short window on the Shopify source, so a test can outlive it
    config = config.replace(
        'type_header = "X-Shopify-Topic"\n',
        f'type_header = "X-Shopify-Topic"\nreplay_window = "{WINDOW_SECONDS}s"\n',
    )
    proc = HooklineProcess(tmp_path, config).start()
    yield proc
    proc.stop()


def _post(
    server: HooklineProcess, source: str, body: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/webhooks/{source}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _replay_lines(server: HooklineProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("msg") == "replay_suspected"]


def test_a_github_body_under_new_delivery_ids_is_the_first_event(server: HooklineProcess) -> None:
    body, headers = signing.github({"action": "opened", "number": 7})
    first = _post(server, "github", body, headers)
    assert first["duplicate"] is False

    for event in ("pull_request", "issues"):  # a changed X-GitHub-Event does not re-type it
        replayed = {**headers, "X-GitHub-Delivery": signing.new_id("d-"), "X-GitHub-Event": event}
        answer = _post(server, "github", body, replayed)
        assert answer == {"id": first["id"], "eventId": first["eventId"], "duplicate": True}

    # GitHub's own redelivery reuses the delivery id: an ordinary duplicate
    assert _post(server, "github", body, headers)["duplicate"] is True
    # another body is another event
    other_body, other_headers = signing.github({"action": "opened", "number": 8})
    assert _post(server, "github", other_body, other_headers)["duplicate"] is False

    with server.admin() as admin:
        events = signing.list_events(admin, source="github")
    assert [(e["eventId"], e["type"]) for e in events][-1] == (
        headers["X-GitHub-Delivery"],
        "pull_request.opened",
    )
    assert len(events) == 2

    logged = _replay_lines(server)
    assert len(logged) == 2
    assert {line["event_id"] for line in logged} == {headers["X-GitHub-Delivery"]}
    assert all(line["id"] == first["id"] for line in logged)
    signature = headers["X-Hub-Signature-256"]
    assert signature not in server.logs() and signature.removeprefix("sha256=") not in server.logs()


def test_a_shopify_body_is_a_replay_within_its_window_only(server: HooklineProcess) -> None:
    body, headers = signing.shopify({"id": 1, "email": "a@example.com"})
    first = _post(server, "shopify", body, headers)
    replayed = {**headers, "X-Shopify-Webhook-Id": signing.new_id("w-")}
    answer = _post(server, "shopify", body, replayed)
    assert answer == {"id": first["id"], "eventId": first["eventId"], "duplicate": True}

    time.sleep(WINDOW_SECONDS + 0.5)  # the window is over: the same body is a new event
    later = {**headers, "X-Shopify-Webhook-Id": signing.new_id("w-")}
    assert _post(server, "shopify", body, later)["duplicate"] is False
    # the first delivery resent under its own id is the first event (whose failed runs a
    # resend resumes), not a replay of the later one with the same body
    assert _post(server, "shopify", body, headers) == first | {"duplicate": True}

    # Stripe's id is signed: its sources have no replay check (an id change fails the signature)
    stripe_body, stripe_headers = signing.stripe()
    assert _post(server, "stripe", stripe_body, stripe_headers)["duplicate"] is False
    assert len(_replay_lines(server)) == 1
