"""Validly signed payloads that stores and encoders choke on: each is stored and shown
everywhere (admin API, dashboard, CLI) or refused with a 4xx naming why; never a 500.

On both backends: SQLite's driver cannot encode a lone surrogate, PostgreSQL's text
refuses NUL, and orjson writes neither lone surrogates, integers past 64 bits nor nesting
past 254 levels.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.support import signing
from tests.support.cli import hookline
from tests.support.server import ADMIN_TOKEN, API_KEY, HooklineProcess, base_config


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[HooklineProcess]:
    config = base_config(db_url, handlers=["tests.e2e.job_handlers"])  # no worker
    proc = HooklineProcess(tmp_path, config).start()
    yield proc
    proc.stop()


def _stripe(event_id: str, event_type: str = "invoice.paid", data: Any = None) -> bytes:
    # json.dumps writes a lone surrogate as its \ud800 escape: valid JSON, as a sender sends it
    return json.dumps({"id": event_id, "type": event_type, "data": data or {}}).encode()


def test_an_id_or_type_no_store_can_hold_is_refused_naming_why(server: HooklineProcess) -> None:
    slack_event = {"type": "event_callback", "event_id": "Ev\ud800", "event": {"type": "x"}}
    cases: list[tuple[str, signing.Signed, str]] = [
        ("stripe", signing.stripe(_stripe("evt_\ud800")), "event id contains a lone surrogate"),
        ("stripe", signing.stripe(_stripe("evt_1", "a\udfff")), "type contains a lone surrogate"),
        ("stripe", signing.stripe(_stripe("evt_\x00nul")), "event id contains a NUL"),
        ("stripe", signing.stripe(_stripe("evt_" + "x" * 3000)), "event id is longer than"),
        ("slack", signing.slack(slack_event), "event id contains a lone surrogate"),
        ("github", signing.github({"action": "\ud83d"}), "type contains a lone surrogate"),
    ]
    for source, (body, headers), why in cases:
        response = httpx.post(f"{server.url}/webhooks/{source}", content=body, headers=headers)
        assert response.status_code == 400, (source, body[:80], response.text)
        assert response.json()["error"] == "invalid_payload"
        assert why in response.json()["detail"]
    with server.admin() as admin:
        assert signing.list_events(admin) == []


def _shown(
    server: HooklineProcess, event_id: str, *, cli: bool = False, cli_shows: bytes | None = None
) -> bytes:
    """The admin API's detail (the dashboard page answers too; ``hookline events show``,
    when ``cli``, prints the same payload)."""
    with server.admin() as admin:
        detail = admin.get(f"/admin/events/{event_id}")
    assert detail.status_code == 200, detail.text
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/admin/login", data={"token": ADMIN_TOKEN}).status_code == 303
        page = client.get(f"/admin/ui/events/{event_id}")
    assert page.status_code == 200, page.text
    assert event_id in page.text
    if cli:
        shown = hookline("events", "show", event_id, "--config", server.config_path)
        assert shown.returncode == 0, shown.stderr
        if cli_shows is None:
            assert json.loads(shown.stdout)["payload"] == json.loads(detail.content)["payload"]
        else:
            assert cli_shows in shown.stdout.encode()
    return detail.content


def test_data_no_encoder_writes_is_stored_and_shown_everywhere(server: HooklineProcess) -> None:
    deep = b"[" * 1000 + b"1" + b"]" * 1000  # orjson reads 1024 levels but writes 254
    bodies = {
        "surrogate": _stripe(signing.new_id(), data={"name": "\ud800 and \udfff", "n": 1}),
        "nul": _stripe(signing.new_id(), data={"name": "a\x00b"}),
        # orjson reads these as infinity, or as floats (past 64 bits), never as the integers
        "wide int": _stripe(signing.new_id(), data={"amount": 10**400, "neg": -(10**300)}),
        "65 bits": _stripe(signing.new_id(), data={"a": 2**64, "b": -(2**63) - 1, "c": 10**29}),
        "deep": b'{"id": "%s", "type": "deep", "data": %s}' % (signing.new_id().encode(), deep),
    }
    for name, body in bodies.items():
        body, headers = signing.stripe(body)
        response = httpx.post(f"{server.url}/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 200, (name, response.text)
        shown = _shown(
            server,
            response.json()["id"],
            cli=name in ("surrogate", "deep"),
            cli_shows=deep if name == "deep" else None,
        )
        if name == "deep":  # past the stdlib's recursion limit: as sent
            assert b'"data": ' + deep in shown
        else:
            assert json.loads(shown)["payload"] == json.loads(body), name

    # a Slack form whose payload field holds a lone surrogate
    payload = json.dumps({"type": "block_actions", "user": {"name": "\ud800"}})
    body, headers = signing.slack(
        urlencode({"payload": payload}).encode(), content_type=signing.FORM
    )
    response = httpx.post(f"{server.url}/webhooks/slack", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert json.loads(_shown(server, response.json()["id"]))["payload"] == json.loads(payload)

    # a job's payload, retried under its Idempotency-Key with other bytes of the same value
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"})
    key = {"Idempotency-Key": signing.new_id("k")}
    with api:
        first = api.post("/jobs/echo", content=b'{"a": "\\ud800"}', headers=key)
        assert first.status_code == 202, first.text
        again = api.post("/jobs/echo", content=b'{ "a" : "\\ud800" }', headers=key)
        assert again.status_code in (200, 202), again.text
        assert again.json()["jobId"] == first.json()["jobId"]
        other = api.post("/jobs/echo", content=b'{"a": "\\udfff"}', headers=key)
        assert other.status_code == 422, other.text
    assert json.loads(_shown(server, first.json()["jobId"]))["payload"] == {"a": "\ud800"}


def test_a_25_mb_event_page_is_bounded_and_acks_go_on(tmp_path: Path, sqlite_url: str) -> None:
    config = base_config(sqlite_url, max_body_bytes=26_214_400)
    proc = HooklineProcess(tmp_path, config).start()
    try:
        items = b",".join(b'{"n":%d,"s":"abcdefgh"}' % n for n in range(900_000))
        raw = b'{"id":"%s","type":"big","data":[%s]}' % (signing.new_id().encode(), items)
        body, headers = signing.stripe(raw)
        assert len(body) > 24_000_000
        with httpx.Client(base_url=proc.url, timeout=60) as client:
            stored = client.post("/webhooks/stripe", content=body, headers=headers)
            assert stored.status_code == 200, stored.text
            assert client.post("/admin/login", data={"token": ADMIN_TOKEN}).status_code == 303
            event_page = f"/admin/ui/events/{stored.json()['id']}"
            with ThreadPoolExecutor(2) as pool:  # an ack while the page is being made
                page = pool.submit(client.get, event_page)
                acks = [
                    httpx.post(f"{proc.url}/webhooks/stripe", content=b, headers=h)
                    for b, h in (signing.stripe() for _ in range(3))
                ]
                answer = page.result()
        assert [ack.status_code for ack in acks] == [200, 200, 200]
        assert answer.status_code == 200
        # its first 64 KiB as text (quotes HTML-escaped), not a megabyte of pretty-printing
        assert len(answer.content) < 500_000
        shown = html.unescape(answer.text)
        assert "truncated" in shown and '{"n":0,"s":"abcdefgh"}' in shown
    finally:
        proc.stop()
