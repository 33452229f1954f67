from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from hookline.providers import (
    HmacProvider,
    InvalidPayload,
    InvalidSignature,
    StaleTimestamp,
    Verified,
)

NOW = 1_700_000_000
SHOPIFY_SECRET = "demo-shopify-secret"
SLACK_SECRET = "demo-slack-signing-secret"
ORDER = json.dumps({"id": 820982911946154508, "email": "jon@example.com"}).encode()
SLACK_EVENT = json.dumps(
    {"type": "event_callback", "event_id": "Ev08MFMKH6", "event": {"type": "app_mention"}}
).encode()


def shopify(**overrides: Any) -> HmacProvider:
    config: dict[str, Any] = {
        "signature_header": "X-Shopify-Hmac-Sha256",
        "encoding": "base64",
        "id_header": "X-Shopify-Webhook-Id",
        "type_header": "X-Shopify-Topic",
    }
    return HmacProvider([SHOPIFY_SECRET], **{**config, **overrides})


def shopify_headers(body: bytes, secret: str = SHOPIFY_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "x-shopify-hmac-sha256": base64.b64encode(digest).decode(),
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "x-shopify-topic": "orders/create",
    }


def slack(secrets: list[str] | None = None, **overrides: Any) -> HmacProvider:
    config: dict[str, Any] = {
        "signature_header": "X-Slack-Signature",
        "signature_prefix": "v0=",
        "signed_content": "v0:{timestamp}:{body}",
        "timestamp_header": "X-Slack-Request-Timestamp",
        "id_field": "event_id",
        "type_field": "event.type",
    }
    return HmacProvider(secrets or [SLACK_SECRET], **{**config, **overrides})


def slack_headers(body: bytes, ts: str = str(NOW), secret: str = SLACK_SECRET) -> dict[str, str]:
    content = f"v0:{ts}:".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()
    return {"x-slack-signature": "v0=" + digest, "x-slack-request-timestamp": ts}


def test_shopify_valid() -> None:
    result = shopify().verify(ORDER, shopify_headers(ORDER), NOW)
    assert result == Verified("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "orders/create")


def test_slack_documented_example() -> None:
    # https://api.slack.com/authentication/verifying-requests-from-slack
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    hdrs = {
        "x-slack-request-timestamp": "1531420618",
        "x-slack-signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    provider = slack(["8f742231b10e8888abcd99yyyzzz85a5"])
    with pytest.raises(InvalidPayload):  # signature and window pass; a form body is not JSON
        provider.verify(body, hdrs, 1531420618)
    with pytest.raises(StaleTimestamp):
        provider.verify(body, hdrs, 1531420618 + 301)
    with pytest.raises(InvalidSignature):
        provider.verify(body + b"&x=1", hdrs, 1531420618)


def test_slack_event_fields() -> None:
    result = slack().verify(SLACK_EVENT, slack_headers(SLACK_EVENT), NOW)
    assert result == Verified("Ev08MFMKH6", "app_mention")


def test_sign_round_trip_with_configured_header_names() -> None:
    provider = slack()
    signed = provider.sign(SLACK_EVENT, NOW + 0.5)
    assert signed == {
        "X-Slack-Signature": slack_headers(SLACK_EVENT)["x-slack-signature"],
        "X-Slack-Request-Timestamp": str(NOW),
    }
    assert provider.verify(SLACK_EVENT, {k.lower(): v for k, v in signed.items()}, NOW)
    shop = shopify().sign(ORDER, NOW)
    assert shop == {"X-Shopify-Hmac-Sha256": shopify_headers(ORDER)["x-shopify-hmac-sha256"]}


def test_signature_headers() -> None:
    assert slack().signature_headers == {"x-slack-signature"}
    assert shopify().signature_headers == {"x-shopify-hmac-sha256"}


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_algorithms_and_encodings(algorithm: str, encoding: str) -> None:
    provider = HmacProvider(["k"], "X-Sig", algorithm, encoding, signature_prefix=f"{algorithm}=")
    digest = hmac.new(b"k", ORDER, algorithm).digest()
    encoded = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    assert provider.verify(ORDER, {"x-sig": f"{algorithm}={encoded}"}, NOW)
    other = "sha512" if algorithm != "sha512" else "sha1"
    wrong = hmac.new(b"k", ORDER, other).digest()
    encoded = wrong.hex() if encoding == "hex" else base64.b64encode(wrong).decode()
    with pytest.raises(InvalidSignature):
        provider.verify(ORDER, {"x-sig": f"{algorithm}={encoded}"}, NOW)


def test_hex_is_case_insensitive() -> None:
    hdrs = slack_headers(SLACK_EVENT)
    hdrs["x-slack-signature"] = "v0=" + hdrs["x-slack-signature"][3:].upper()
    assert slack().verify(SLACK_EVENT, hdrs, NOW)


def test_body_is_spliced_as_raw_bytes() -> None:
    # Not UTF-8, and contains the placeholder text: must be signed byte for byte, untouched.
    body = b"\xff{timestamp}\x00{body}"
    hdrs = slack_headers(body)
    with pytest.raises(InvalidPayload):  # got past the signature
        slack().verify(body, hdrs, NOW)


def test_tampered_body_and_wrong_secret() -> None:
    with pytest.raises(InvalidSignature):
        shopify().verify(ORDER + b" ", shopify_headers(ORDER), NOW)
    with pytest.raises(InvalidSignature):
        shopify().verify(ORDER, shopify_headers(ORDER, "other"), NOW)
    with pytest.raises(InvalidSignature):  # timestamp is part of the signed content
        hdrs = slack_headers(SLACK_EVENT)
        slack().verify(SLACK_EVENT, {**hdrs, "x-slack-request-timestamp": str(NOW + 1)}, NOW)


def test_rotated_secret() -> None:
    provider = slack(["new-secret", SLACK_SECRET])
    assert provider.verify(SLACK_EVENT, slack_headers(SLACK_EVENT), NOW)


@pytest.mark.parametrize("missing", ["x-slack-signature", "x-slack-request-timestamp"])
def test_missing_header(missing: str) -> None:
    hdrs = slack_headers(SLACK_EVENT)
    del hdrs[missing]
    with pytest.raises(InvalidSignature, match=missing):
        slack().verify(SLACK_EVENT, hdrs, NOW)


@pytest.mark.parametrize("delta", [-301, 301])
def test_stale_and_future_timestamps(delta: int) -> None:
    hdrs = slack_headers(SLACK_EVENT, str(NOW + delta))
    with pytest.raises(StaleTimestamp):
        slack().verify(SLACK_EVENT, hdrs, NOW)


def test_no_window_without_timestamp_header() -> None:
    assert shopify().verify(ORDER, shopify_headers(ORDER), 0)


@pytest.mark.parametrize("ts", ["", "abc", f"{NOW}.5", f"-{NOW}", f" {NOW}", "1e9", "9" * 400])
def test_non_integer_timestamp(ts: str) -> None:
    with pytest.raises(InvalidSignature):
        slack().verify(SLACK_EVENT, slack_headers(SLACK_EVENT, ts), NOW)


GOOD_SLACK = slack_headers(SLACK_EVENT)["x-slack-signature"]
GOOD_SHOPIFY = shopify_headers(ORDER)["x-shopify-hmac-sha256"]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "v0=",
        GOOD_SLACK[3:],  # no prefix
        "v1=" + GOOD_SLACK[3:],
        GOOD_SLACK[:-1],
        GOOD_SLACK + "0",
        "v0=" + "g" * 64,
        GOOD_SLACK + "x" * 100_000,
        "v0=" + "\u00e9" * 64,
    ],
)
def test_malformed_hex_signature(value: str) -> None:
    hdrs = {**slack_headers(SLACK_EVENT), "x-slack-signature": value}
    with pytest.raises(InvalidSignature):
        slack().verify(SLACK_EVENT, hdrs, NOW)


@pytest.mark.parametrize(
    "value",
    [
        "",
        GOOD_SHOPIFY.rstrip("="),  # unpadded
        GOOD_SHOPIFY + "==",
        "!" + GOOD_SHOPIFY[1:],
        GOOD_SHOPIFY[4:],
        hashlib.sha256(ORDER).hexdigest(),  # hex where base64 is expected
        GOOD_SHOPIFY + " ",
        "A" * 100_000,
    ],
)
def test_malformed_base64_signature(value: str) -> None:
    hdrs = {**shopify_headers(ORDER), "x-shopify-hmac-sha256": value}
    with pytest.raises(InvalidSignature):
        shopify().verify(ORDER, hdrs, NOW)


def test_id_defaults_to_body_hash_and_type_to_empty() -> None:
    provider = HmacProvider(["k"], "X-Sig")
    sig = hmac.new(b"k", ORDER, hashlib.sha256).hexdigest()
    assert provider.verify(ORDER, {"x-sig": sig}, NOW) == Verified(
        hashlib.sha256(ORDER).hexdigest(), ""
    )


def test_any_json_value_is_a_valid_payload() -> None:
    provider = HmacProvider(["k"], "X-Sig")
    for body in (b"[1, 2]", b'"text"', b"42", b"null"):
        assert provider.verify(body, {"x-sig": hmac.new(b"k", body, "sha256").hexdigest()}, NOW)


@pytest.mark.parametrize("body", [b"hello", b"<xml>order</xml>", b"", b"\xff\xfe"])
def test_a_body_that_is_no_json_verifies_when_no_field_is_read_from_it(body: bytes) -> None:
    """Any HMAC-signing sender: a text, XML or empty body is stored, its id the body's
    SHA-256 or the id header; only a configured id_field/type_field needs JSON."""
    sig = {"x-sig": hmac.new(b"k", body, "sha256").hexdigest()}
    by_digest = HmacProvider(["k"], "X-Sig").verify(body, sig, NOW)
    assert by_digest == Verified(hashlib.sha256(body).hexdigest(), "")
    by_header = HmacProvider(["k"], "X-Sig", id_header="X-Id", type_header="X-Topic")
    assert by_header.verify(body, {**sig, "x-id": "42", "x-topic": "t"}, NOW) == Verified("42", "t")
    with pytest.raises(InvalidPayload):
        HmacProvider(["k"], "X-Sig", id_field="id").verify(body, sig, NOW)


@pytest.mark.parametrize(
    ("body", "expected_id"),
    [(b'{"event": {"id": "abc"}}', "abc"), (b'{"event": {"id": 123}}', "123")],
)
def test_id_field_dotted_path(body: bytes, expected_id: str) -> None:
    provider = HmacProvider(["k"], "X-Sig", id_field="event.id")
    sig = hmac.new(b"k", body, "sha256").hexdigest()
    assert provider.verify(body, {"x-sig": sig}, NOW).event_id == expected_id


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"event": {}}',
        b'{"event": "id"}',
        b'{"event": {"id": true}}',
        b'{"event": {"id": 1.5}}',
        b'{"event": {"id": ""}}',
        b'{"event": {"id": null}}',
        b"[]",
    ],
)
def test_invalid_payload_after_valid_signature(body: bytes) -> None:
    provider = HmacProvider(["k"], "X-Sig", id_field="event.id", type_field="type")
    sig = hmac.new(b"k", body, "sha256").hexdigest()
    with pytest.raises(InvalidPayload):
        provider.verify(body, {"x-sig": sig}, NOW)


def test_missing_type_field_is_invalid_payload() -> None:
    body = b'{"event_id": "Ev1", "event": {}}'
    with pytest.raises(InvalidPayload, match="type"):
        slack().verify(body, slack_headers(body), NOW)


@pytest.mark.parametrize("missing", ["x-shopify-webhook-id", "x-shopify-topic"])
def test_missing_id_or_type_header_is_invalid_payload(missing: str) -> None:
    hdrs = shopify_headers(ORDER)
    del hdrs[missing]
    with pytest.raises(InvalidPayload, match=missing):
        shopify().verify(ORDER, hdrs, NOW)


@pytest.mark.parametrize(
    ("secrets", "overrides", "message"),
    [
        ([], {}, "must not be empty"),
        ([""], {}, "is empty"),
        (["k"], {"signature_header": ""}, "signature_header"),
        (["k"], {"algorithm": "md5"}, "algorithm"),
        (["k"], {"algorithm": "SHA-256"}, "algorithm"),
        (["k"], {"encoding": "base32"}, "encoding"),
        (["k"], {"signed_content": "{timestamp}"}, "\\{body\\}"),
        (["k"], {"signed_content": "{timestamp}.{body}"}, "timestamp_header is not set"),
        (["k"], {"timestamp_header": "X-Ts"}, "no \\{timestamp\\}"),
        (["k"], {"id_header": "X-Id", "id_field": "id"}, "id_header"),
        (["k"], {"type_header": "X-T", "type_field": "type"}, "type_header"),
        (["k"], {"id_field": "event..id"}, "dotted path"),
        (["k"], {"type_field": "."}, "dotted path"),
        (["k"], {"tolerance_seconds": -1}, "positive"),
    ],
)
def test_bad_config(secrets: list[str], overrides: dict[str, Any], message: str) -> None:
    config: dict[str, Any] = {"signature_header": "X-Sig", **overrides}
    with pytest.raises(ValueError, match=message):
        HmacProvider(secrets, **config)
