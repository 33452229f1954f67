from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from hookline.providers import (
    InvalidPayload,
    InvalidSignature,
    StaleTimestamp,
    StandardProvider,
    Verified,
)

NOW = 1_700_000_000
KEY = b"hookline-standard-webhooks-key-32"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another key").decode()
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = json.dumps({"type": "invoice.paid", "data": {"id": "in_1"}}).encode()


def sig(body: bytes = BODY, msg_id: str = MSG_ID, ts: str = str(NOW), key: bytes = KEY) -> str:
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    body: bytes = BODY, msg_id: str = MSG_ID, ts: str = str(NOW), key: bytes = KEY
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": sig(body, msg_id, ts, key),
    }


def test_documented_example() -> None:
    # The example of the Standard Webhooks reference libraries (and Svix's docs).
    provider = StandardProvider(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    hdrs = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    assert provider.verify(body, hdrs, 1614265330) == Verified("msg_p5jXN8AQM9LWM0D4loKWxJek", "")


def test_valid() -> None:
    assert StandardProvider([SECRET]).verify(BODY, headers(), NOW) == Verified(
        MSG_ID, "invoice.paid"
    )


def test_secret_prefix_and_padding_are_optional() -> None:
    bare = base64.b64encode(KEY).decode()
    for secret in (bare, bare.rstrip("="), SECRET.rstrip("=")):
        assert StandardProvider([secret]).verify(BODY, headers(), NOW)


def test_sign_with_and_without_msg_id() -> None:
    provider = StandardProvider([SECRET, OTHER_SECRET])
    assert provider.sign(BODY, NOW + 0.7, msg_id=MSG_ID) == {
        "webhook-timestamp": str(NOW),
        "webhook-signature": sig(),
    }
    fresh = provider.sign(BODY, NOW)
    assert fresh["webhook-id"].startswith("msg_") and fresh["webhook-id"] != MSG_ID
    assert provider.verify(BODY, fresh, NOW).event_id == fresh["webhook-id"]
    assert provider.sign(BODY, NOW)["webhook-id"] != fresh["webhook-id"]


def test_signature_headers() -> None:
    assert StandardProvider([SECRET]).signature_headers == {"webhook-signature"}


def test_tampered_body_id_and_timestamp() -> None:
    provider = StandardProvider([SECRET])
    with pytest.raises(InvalidSignature):
        provider.verify(BODY + b" ", headers(), NOW)
    with pytest.raises(InvalidSignature):
        provider.verify(BODY, {**headers(), "webhook-id": MSG_ID + "x"}, NOW)
    with pytest.raises(InvalidSignature):
        provider.verify(BODY, {**headers(), "webhook-timestamp": str(NOW + 1)}, NOW)


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignature) as exc:
        StandardProvider([OTHER_SECRET]).verify(BODY, headers(), NOW)
    assert sig()[3:] not in str(exc.value)


def test_stripe_style_key_does_not_verify() -> None:
    # Keying with the whole "whsec_..." string (the Stripe way) is wrong here.
    with pytest.raises(InvalidSignature):
        StandardProvider([SECRET]).verify(BODY, headers(key=SECRET.encode()), NOW)


def test_rotated_secret() -> None:
    provider = StandardProvider([OTHER_SECRET, SECRET])
    assert provider.verify(BODY, headers(), NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(missing: str) -> None:
    hdrs = headers()
    del hdrs[missing]
    with pytest.raises(InvalidSignature):
        StandardProvider([SECRET]).verify(BODY, hdrs, NOW)
    with pytest.raises(InvalidSignature):
        StandardProvider([SECRET]).verify(BODY, {**hdrs, missing: ""}, NOW)


@pytest.mark.parametrize("delta", [-301, 301, -86_400, 86_400])
def test_stale_and_future_timestamps(delta: int) -> None:
    with pytest.raises(StaleTimestamp):
        StandardProvider([SECRET]).verify(BODY, headers(ts=str(NOW + delta)), NOW)


def test_signature_is_checked_before_timestamp() -> None:
    hdrs = headers(ts=str(NOW - 1000), key=b"wrong")
    with pytest.raises(InvalidSignature):
        StandardProvider([SECRET]).verify(BODY, hdrs, NOW)


@pytest.mark.parametrize("ts", ["abc", f"{NOW}.0", f"-{NOW}", "1e9", f"{NOW} ", "9" * 100])
def test_malformed_timestamp(ts: str) -> None:
    with pytest.raises(InvalidSignature):
        StandardProvider([SECRET]).verify(BODY, headers(ts=ts), NOW)


GOOD = sig()


@pytest.mark.parametrize(
    "value",
    [
        " ",
        "v1",
        "v1,",
        GOOD[3:],  # no version
        "v2," + GOOD[3:],
        "v1a," + GOOD[3:],
        "V1," + GOOD[3:],
        GOOD[:-2],
        GOOD + "AAAA",
        "v1,!" + GOOD[4:],
        GOOD.replace(",", ", "),
        GOOD + "\u00e9",
        GOOD + " v1," + "A" * 100_000,
        ("v1," + "A" * 43 + "= ") * 32 + GOOD,  # only 32 entries are considered
    ],
)
def test_malformed_signature_header(value: str) -> None:
    with pytest.raises(InvalidSignature):
        StandardProvider([SECRET]).verify(BODY, {**headers(), "webhook-signature": value}, NOW)


@pytest.mark.parametrize(
    "value",
    [
        f"v1,{'A' * 43}= {GOOD}",
        f"{GOOD} v1,{'A' * 43}=",
        f"v1a,{'B' * 86}== {GOOD}",
        f"v1,notbase64 {GOOD}",
        f"v1,{sig(key=b'rotated-out')[3:]} {GOOD}",
        f"  {GOOD}  ",
    ],
)
def test_several_entries_one_good(value: str) -> None:
    provider = StandardProvider([SECRET])
    assert provider.verify(BODY, {**headers(), "webhook-signature": value}, NOW)


@pytest.mark.parametrize(
    ("body", "expected_type"),
    [(b'{"type": 3}', ""), (b"{}", ""), (b'{"type": "a.b"}', "a.b")],
)
def test_type_extraction(body: bytes, expected_type: str) -> None:
    provider = StandardProvider([SECRET])
    assert provider.verify(body, headers(body), NOW).event_type == expected_type


@pytest.mark.parametrize("body", [b"", b"nope", b"[]", b"1", b"\xc3\x28"])
def test_invalid_payload_after_valid_signature(body: bytes) -> None:
    with pytest.raises(InvalidPayload):
        StandardProvider([SECRET]).verify(body, headers(body), NOW)


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ([], "must not be empty"),
        ([""], "is empty"),
        (["whsec_"], "base64"),
        (["whsec_not base64!"], "base64"),
        (["whsec_\u00e9\u00e9\u00e9\u00e9"], "base64"),
        (["whsec_A"], "base64"),
        ([SECRET, "whsec_===="], "base64"),
        ("whsec_abcd", "list of strings"),
    ],
)
def test_bad_config(secrets: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        StandardProvider(secrets)
    for secret in secrets:
        if len(secret) > 6:
            assert secret not in str(exc.value)
