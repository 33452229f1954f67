"""``provider = "slack"``: v0 signatures over JSON and form bodies, the url_verification
handshake, and what becomes the event id and type."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from hookline.providers import (
    Handshake,
    InvalidPayload,
    InvalidSignature,
    SlackProvider,
    StaleTimestamp,
    Verified,
)

NOW = 1_700_000_000
SECRET = "slack-signing-secret-for-tests"
FORM = {"content-type": "application/x-www-form-urlencoded"}

# Slack's own example, https://api.slack.com/authentication/verifying-requests-from-slack
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = 1531420618
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
    b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

EVENT = json.dumps(
    {
        "type": "event_callback",
        "event_id": "Ev08MFMKH6",
        "event": {"type": "app_mention", "text": "hi"},
    }
).encode()


def signed(body: bytes, ts: int = NOW, secret: str = SECRET, **extra: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-slack-signature": f"v0={digest}", "x-slack-request-timestamp": str(ts), **extra}


def provider(*secrets: str) -> SlackProvider:
    return SlackProvider(list(secrets) or [SECRET])


def test_documented_example_verifies_and_is_a_slash_command() -> None:
    hdrs = {**FORM, "x-slack-request-timestamp": str(DOC_TIMESTAMP)}
    hdrs["x-slack-signature"] = DOC_SIGNATURE
    result = provider(DOC_SECRET).verify(DOC_BODY, hdrs, DOC_TIMESTAMP)
    assert result == Verified(hashlib.sha256(DOC_BODY).hexdigest(), "slash_command")
    # our sign() produces Slack's signature for the same request
    assert provider(DOC_SECRET).sign(DOC_BODY, DOC_TIMESTAMP + 0.9) == {
        "X-Slack-Signature": DOC_SIGNATURE,
        "X-Slack-Request-Timestamp": str(DOC_TIMESTAMP),
    }
    with pytest.raises(InvalidSignature):
        provider(DOC_SECRET).verify(DOC_BODY + b"&x=1", hdrs, DOC_TIMESTAMP)
    with pytest.raises(InvalidSignature):
        provider(SECRET).verify(DOC_BODY, hdrs, DOC_TIMESTAMP)


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_timestamp_window_both_ways(skew: int) -> None:
    with pytest.raises(StaleTimestamp):
        provider().verify(EVENT, signed(EVENT), NOW + skew)
    assert provider().verify(EVENT, signed(EVENT), NOW + (300 if skew > 0 else -300))


def test_url_verification_is_a_handshake_only_once_signed() -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps(
        {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"}
    ).encode()
    result = provider().verify(body, signed(body), NOW)
    assert result == Handshake("url_verification", {"challenge": challenge})
    with pytest.raises(InvalidSignature):
        provider().verify(body, signed(body, secret="not-the-secret"), NOW)
    with pytest.raises(StaleTimestamp):
        provider().verify(body, signed(body, ts=NOW - 3600), NOW)
    no_challenge = b'{"type": "url_verification"}'
    with pytest.raises(InvalidPayload):
        provider().verify(no_challenge, signed(no_challenge), NOW)


def test_event_callback_id_and_type() -> None:
    assert provider().verify(EVENT, signed(EVENT), NOW) == Verified("Ev08MFMKH6", "app_mention")
    retry = signed(EVENT, **{"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"})
    assert provider().verify(EVENT, retry, NOW) == Verified("Ev08MFMKH6", "app_mention")


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "event_callback", "event_id": "Ev1"},  # no event
        {"type": "event_callback", "event_id": "Ev1", "event": {"type": 3}},
        {"type": "event_callback", "event_id": 12, "event": {"type": "message"}},
        {"event_id": "Ev1", "event": {"type": "message"}},  # no request type
    ],
)
def test_malformed_events_are_invalid_payloads(payload: dict[str, object]) -> None:
    body = json.dumps(payload).encode()
    with pytest.raises(InvalidPayload):
        provider().verify(body, signed(body), NOW)


def test_other_json_requests_dedupe_on_the_body() -> None:
    body = (
        b'{"token":"t","type":"app_rate_limited","team_id":"T1","minute_rate_limited":1518467820}'
    )
    result = provider().verify(body, signed(body), NOW)
    assert result == Verified(hashlib.sha256(body).hexdigest(), "app_rate_limited")


def test_interactivity_payload_type() -> None:
    payload = {"type": "block_actions", "actions": [{"action_id": "approve", "value": "ok"}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    result = provider().verify(body, {**signed(body), **FORM}, NOW)
    assert result == Verified(hashlib.sha256(body).hexdigest(), "block_actions")
    for bad in ({"payload": "{not json"}, {"payload": "[1]"}, {"payload": '{"type": 1}'}):
        bad_body = urlencode(bad).encode()
        with pytest.raises(InvalidPayload):
            provider().verify(bad_body, {**signed(bad_body), **FORM}, NOW)


def test_form_content_type_with_parameters_and_ssl_check() -> None:
    body = b"ssl_check=1&token=Jhj5dZrVaK7ZwHHjRyZWjbDl"
    hdrs = {**signed(body), "content-type": "Application/X-WWW-Form-Urlencoded; charset=utf-8"}
    assert provider().verify(body, hdrs, NOW) == Handshake("ssl_check", {})
    other = b"foo=bar"
    with pytest.raises(InvalidPayload):
        provider().verify(other, {**signed(other), **FORM}, NOW)


def test_form_body_sent_as_json_is_not_json() -> None:
    with pytest.raises(InvalidPayload):
        provider().verify(DOC_BODY, signed(DOC_BODY), NOW)  # no form content type


def test_rotation_any_secret_may_match() -> None:
    both = provider("new-secret", SECRET)
    assert both.verify(EVENT, signed(EVENT), NOW).event_id == "Ev08MFMKH6"  # type: ignore[union-attr]
    assert both.verify(EVENT, signed(EVENT, secret="new-secret"), NOW)


@pytest.mark.parametrize(
    "value",
    ["", "v0", "v1=" + "0" * 64, "v0=" + "0" * 63, "v0=" + "g" * 64, "v0=" + "0" * 66],
)
def test_malformed_signature_headers(value: str) -> None:
    with pytest.raises(InvalidSignature):
        provider().verify(EVENT, {**signed(EVENT), "x-slack-signature": value}, NOW)


@pytest.mark.parametrize("missing", ["x-slack-signature", "x-slack-request-timestamp"])
def test_missing_headers(missing: str) -> None:
    hdrs = signed(EVENT)
    del hdrs[missing]
    with pytest.raises(InvalidSignature):
        provider().verify(EVENT, hdrs, NOW)


def test_bad_timestamps_are_invalid_signatures() -> None:
    for ts in ("-1", "1e9", " 1700000000", "\u0661"):
        hdrs = {**signed(EVENT), "x-slack-request-timestamp": ts}
        with pytest.raises(InvalidSignature):
            provider().verify(EVENT, hdrs, NOW)


def test_signature_headers_and_secret_checks() -> None:
    assert provider().signature_headers == {"x-slack-signature"}
    with pytest.raises(ValueError):
        SlackProvider([])
    with pytest.raises(ValueError):
        SlackProvider([SECRET], tolerance_seconds=0)
