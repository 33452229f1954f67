from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from hookline.providers import GitHubProvider, InvalidPayload, InvalidSignature, Verified

SECRET = "demo-github-secret"
OLD_SECRET = "old-github-secret"
PR_OPENED = json.dumps({"action": "opened", "number": 1, "pull_request": {}}).encode()
PUSH = json.dumps({"ref": "refs/heads/main", "commits": []}).encode()


def sig(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(
    body: bytes, event: str = "pull_request", secret: str = SECRET, **extra: str
) -> dict[str, str]:
    return {
        "x-hub-signature-256": sig(body, secret),
        "x-github-event": event,
        "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        **extra,
    }


def test_documented_test_vector() -> None:
    # https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    provider = GitHubProvider(["It's a Secret to Everybody"])
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    provider.verify_signature(b"Hello, World!", {"x-hub-signature-256": signature})
    # The payload is not JSON, so full verification gets past the signature and stops at parsing.
    with pytest.raises(InvalidPayload):
        provider.verify(b"Hello, World!", {"x-hub-signature-256": signature}, 0)
    with pytest.raises(InvalidSignature):
        provider.verify(b"Hello, World?", {"x-hub-signature-256": signature}, 0)


def test_pull_request_opened() -> None:
    result = GitHubProvider([SECRET]).verify(PR_OPENED, headers(PR_OPENED), 0)
    assert result == Verified("72d3162e-cc78-11e3-81ab-4c9367dc0958", "pull_request.opened")


def test_push_has_no_action() -> None:
    assert GitHubProvider([SECRET]).verify(PUSH, headers(PUSH, "push"), 0).event_type == "push"


@pytest.mark.parametrize("action", ['""', "1", "null", '{"a": 1}'])
def test_non_string_or_empty_action_is_ignored(action: str) -> None:
    body = f'{{"action": {action}}}'.encode()
    assert GitHubProvider([SECRET]).verify(body, headers(body, "issues"), 0).event_type == "issues"


def test_no_timestamp_any_clock() -> None:
    provider = GitHubProvider([SECRET])
    for now in (0.0, 1e10):
        assert provider.verify(PUSH, headers(PUSH, "push"), now)


def test_sign_round_trip() -> None:
    provider = GitHubProvider([SECRET, OLD_SECRET])
    signed = provider.sign(PUSH, 0)
    assert signed == {"X-Hub-Signature-256": sig(PUSH)}
    hdrs = {**headers(PUSH, "push"), "x-hub-signature-256": signed["X-Hub-Signature-256"]}
    assert provider.verify(PUSH, hdrs, 0)


def test_signature_headers() -> None:
    assert GitHubProvider([SECRET]).signature_headers == {"x-hub-signature-256", "x-hub-signature"}


def test_tampered_body() -> None:
    with pytest.raises(InvalidSignature):
        GitHubProvider([SECRET]).verify(PUSH + b"\n", headers(PUSH, "push"), 0)


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignature) as exc:
        GitHubProvider([OLD_SECRET]).verify(PUSH, headers(PUSH, "push"), 0)
    assert sig(PUSH).removeprefix("sha256=") not in str(exc.value)


@pytest.mark.parametrize("signing_secret", [SECRET, OLD_SECRET])
def test_rotated_secrets(signing_secret: str) -> None:
    provider = GitHubProvider([SECRET, OLD_SECRET])
    assert provider.verify(PUSH, headers(PUSH, "push", signing_secret), 0)


def test_missing_signature_header() -> None:
    hdrs = headers(PUSH, "push")
    del hdrs["x-hub-signature-256"]
    with pytest.raises(InvalidSignature):
        GitHubProvider([SECRET]).verify(PUSH, hdrs, 0)


def test_sha1_header_alone_is_rejected() -> None:
    hdrs = headers(PUSH, "push")
    del hdrs["x-hub-signature-256"]
    hdrs["x-hub-signature"] = "sha1=" + hmac.new(SECRET.encode(), PUSH, hashlib.sha1).hexdigest()
    with pytest.raises(InvalidSignature, match="SHA-1"):
        GitHubProvider([SECRET]).verify(PUSH, hdrs, 0)


def test_sha1_header_next_to_sha256_is_ignored() -> None:
    hdrs = headers(PUSH, "push", **{"x-hub-signature": "sha1=whatever"})
    assert GitHubProvider([SECRET]).verify(PUSH, hdrs, 0)


GOOD = sig(PUSH)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256=",
        GOOD.removeprefix("sha256="),  # no prefix
        "sha1=" + GOOD.removeprefix("sha256="),
        "SHA256=" + GOOD.removeprefix("sha256="),
        " " + GOOD,
        GOOD[:-1],
        GOOD + "0",
        "sha256=" + "g" * 64,
        GOOD + "," + GOOD,
        GOOD + "x" * 100_000,
        "sha256=\u0661" * 10,
    ],
)
def test_malformed_signature(value: str) -> None:
    hdrs = {**headers(PUSH, "push"), "x-hub-signature-256": value}
    with pytest.raises(InvalidSignature):
        GitHubProvider([SECRET]).verify(PUSH, hdrs, 0)


def test_uppercase_hex_is_accepted() -> None:
    hdrs = {**headers(PUSH, "push"), "x-hub-signature-256": "sha256=" + GOOD[7:].upper()}
    assert GitHubProvider([SECRET]).verify(PUSH, hdrs, 0)


@pytest.mark.parametrize("missing", ["x-github-delivery", "x-github-event"])
def test_missing_id_or_event_header(missing: str) -> None:
    hdrs = headers(PUSH, "push")
    del hdrs[missing]
    with pytest.raises(InvalidPayload, match=missing):
        GitHubProvider([SECRET]).verify(PUSH, hdrs, 0)


@pytest.mark.parametrize("body", [b"", b"payload=%7B%7D", b"[1]", b"null", b"\x80"])
def test_invalid_payload_after_valid_signature(body: bytes) -> None:
    with pytest.raises(InvalidPayload):
        GitHubProvider([SECRET]).verify(body, headers(body, "push"), 0)


@pytest.mark.parametrize("secrets", [[], [""], "secret"])
def test_bad_config(secrets: list[str]) -> None:
    with pytest.raises(ValueError):
        GitHubProvider(secrets)


FORM = "application/x-www-form-urlencoded"


def test_form_encoded_delivery_is_verified_over_the_raw_body() -> None:
    # GitHub's "application/x-www-form-urlencoded" content type: payload=<the JSON>
    body = urlencode({"payload": PR_OPENED.decode()}).encode()
    hdrs = headers(body, **{"content-type": FORM})
    result = GitHubProvider([SECRET]).verify(body, hdrs, 0)
    assert result == Verified("72d3162e-cc78-11e3-81ab-4c9367dc0958", "pull_request.opened")
    # the signature covers the encoded bytes, not the JSON inside them
    with pytest.raises(InvalidSignature):
        GitHubProvider([SECRET]).verify(
            body, {**hdrs, **{"x-hub-signature-256": sig(PR_OPENED)}}, 0
        )


@pytest.mark.parametrize(
    "form", [{"other": "{}"}, {"payload": "{not json"}, {"payload": "[1, 2]"}, {}]
)
def test_form_without_a_json_object_payload_is_invalid(form: dict[str, str]) -> None:
    body = urlencode(form).encode()
    with pytest.raises(InvalidPayload):
        GitHubProvider([SECRET]).verify(body, headers(body, **{"content-type": FORM}), 0)
