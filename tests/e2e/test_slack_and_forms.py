"""Slack and GitHub as they really send, over real HTTP against ``hookline serve``:
Slack's signed ``url_verification`` handshake, Events API retries, slash commands and
interactivity (form bodies), and GitHub's form-encoded content type. For form bodies,
the admin API's ``payload`` and the handler's ``Event.data`` are the same parsed data."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from hookline.providers import SlackProvider
from tests.support import signing
from tests.support.clients import all_events, event_detail, wait_status
from tests.support.server import HooklineProcess, base_config

DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's documented example secret
FRESH_SECRET = secrets.token_hex(16)
CHALLENGE = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"  # Slack's example
URL_VERIFICATION = json.dumps(
    {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": CHALLENGE, "type": "url_verification"}
).encode()
SLASH_COMMAND = [
    ("token", "Jhj5dZrVaK7ZwHHjRyZWjbDl"),
    ("team_id", "T04R7B2K8QF"),
    ("channel_id", "C06A1B2C3D4"),
    ("user_id", "U05L8P2D4XK"),
    ("command", "/hookline"),
    ("text", "redeliver failed invoice.* --since 24h"),
    ("response_url", "https://hooks.slack.com/commands/T04R7B2K8QF/812/Xy7Q"),
    ("trigger_id", "8123456789012.4871234567890.5c9f0e1d2b3a"),
]
EXTRA_SOURCES = f"""
[[sources]]
name = "slack-doc"
provider = "slack"
secrets = ["{DOC_SECRET}"]

[[sources]]
name = "slack-fresh"
provider = "slack"
secrets = ["{FRESH_SECRET}"]
"""


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[HooklineProcess]:
    config = base_config(db_url, handlers=["tests.e2e.form_handlers"], workers=1)
    proc = HooklineProcess(tmp_path, config + EXTRA_SOURCES).start()
    yield proc
    proc.stop()


@pytest.fixture
def admin(server: HooklineProcess) -> Iterator[httpx.Client]:
    with server.admin() as client:
        yield client


def post(
    server: HooklineProcess, source: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return httpx.post(f"{server.url}/webhooks/{source}", content=body, headers=headers, timeout=10)


def handler_result(admin: httpx.Client, event_id: str) -> Any:
    return wait_status(admin, event_id, "succeeded")["runs"][0]["result"]


def test_url_verification_answers_the_challenge_and_stores_nothing(
    server: HooklineProcess, admin: httpx.Client
) -> None:
    for source, secret in (("slack-doc", DOC_SECRET), ("slack-fresh", FRESH_SECRET)):
        headers = SlackProvider([secret]).sign(URL_VERIFICATION, time.time())
        response = post(
            server, source, URL_VERIFICATION, {"Content-Type": "application/json", **headers}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"challenge": CHALLENGE}
        # signed with the other source's secret: refused
        other = FRESH_SECRET if secret == DOC_SECRET else DOC_SECRET
        wrong = SlackProvider([other]).sign(URL_VERIFICATION, time.time())
        refused = post(server, source, URL_VERIFICATION, wrong)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_signature"
    stale = SlackProvider([DOC_SECRET]).sign(URL_VERIFICATION, time.time() - 360)
    refused = post(server, "slack-doc", URL_VERIFICATION, stale)
    assert (refused.status_code, refused.json()["error"]) == (400, "stale_timestamp")
    assert all_events(admin) == []
    log = server.logs()
    assert '"outcome":"handshake"' in log and '"handshake":"url_verification"' in log
    assert CHALLENGE not in log


def test_event_callback_is_stored_and_its_retry_is_a_duplicate(
    server: HooklineProcess, admin: httpx.Client
) -> None:
    body, headers = signing.slack()
    first = post(server, "slack", body, headers)
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False
    event_id = json.loads(body)["event_id"]
    assert first.json()["eventId"] == event_id
    # Slack retries with a new timestamp (so a new signature) and X-Slack-Retry-Num
    retry_headers = {**signing.slack(body, now=time.time() + 2)[1], "X-Slack-Retry-Num": "1"}
    retry_headers["X-Slack-Retry-Reason"] = "http_timeout"
    retry = post(server, "slack", body, retry_headers)
    assert retry.status_code == 200, retry.text
    assert retry.json() == {**first.json(), "duplicate": True}
    (summary,) = all_events(admin)
    assert (summary["type"], summary["eventId"]) == ("app_mention", event_id)
    assert handler_result(admin, first.json()["id"])["data"] == json.loads(body)


def test_slash_command_and_interactivity_forms_are_stored_parsed(
    server: HooklineProcess, admin: httpx.Client
) -> None:
    command = urlencode(SLASH_COMMAND).encode()
    response = post(server, "slack", *signing.slack(command, content_type=signing.FORM))
    assert response.status_code == 200, response.text
    detail = event_detail(admin, response.json()["id"])
    assert detail["type"] == "slash_command"
    assert detail["payload"] == dict(SLASH_COMMAND)
    assert detail["payload"]["text"] == "redeliver failed invoice.* --since 24h"  # '+' decoded
    assert handler_result(admin, response.json()["id"]) == {
        "type": "slash_command",
        "data": dict(SLASH_COMMAND),
    }

    action = {"type": "block_actions", "actions": [{"action_id": "redeliver", "value": "évt"}]}
    form = urlencode({"payload": json.dumps(action)}).encode()
    response = post(
        server, "slack", *signing.slack(form, content_type=signing.FORM + "; charset=utf-8")
    )
    assert response.status_code == 200, response.text
    detail = event_detail(admin, response.json()["id"])
    assert (detail["type"], detail["payload"]) == ("block_actions", action)
    assert handler_result(admin, response.json()["id"])["data"] == action

    # the same body again (a resend) is a duplicate: the id is the body's SHA-256
    again = post(server, "slack", *signing.slack(command, content_type=signing.FORM))
    assert again.json()["duplicate"] is True


def test_bad_signature_and_stale_timestamp_are_refused(
    server: HooklineProcess, admin: httpx.Client
) -> None:
    command = urlencode(SLASH_COMMAND).encode()
    _, headers = signing.slack(command, content_type=signing.FORM)
    tampered = post(server, "slack", command.replace(b"hookline", b"hookl1ne"), headers)
    assert (tampered.status_code, tampered.json()["error"]) == (400, "invalid_signature")
    for skew in (-360, 360):
        old_body, old = signing.slack(command, now=time.time() + skew, content_type=signing.FORM)
        refused = post(server, "slack", old_body, old)
        assert (refused.status_code, refused.json()["error"]) == (400, "stale_timestamp")
    assert all_events(admin) == []
    assert headers["X-Slack-Signature"] not in server.logs()


def test_github_form_encoded_delivery_is_stored_with_its_parsed_payload(
    server: HooklineProcess, admin: httpx.Client
) -> None:
    payload = {"action": "created", "comment": {"body": "a+b & c=d \u00e9"}, "issue": {"number": 7}}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    _, headers = signing.github(body, event="issue_comment")
    headers["Content-Type"] = signing.FORM
    response = post(server, "github", body, headers)
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False
    detail = event_detail(admin, response.json()["id"])
    assert (detail["type"], detail["payload"]) == ("issue_comment.created", payload)
    assert handler_result(admin, response.json()["id"])["data"] == payload
    assert dict(parse_qsl(body.decode())) == {"payload": json.dumps(payload)}

    repeat = post(server, "github", body, headers)
    assert repeat.json() == {**response.json(), "duplicate": True}
