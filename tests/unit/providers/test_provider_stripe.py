from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest

from hookline.providers import (
    InvalidPayload,
    InvalidSignature,
    StaleTimestamp,
    StripeProvider,
    Verified,
)

SECRET = "whsec_test_secret_0123456789abcdef"
OLD_SECRET = "whsec_old_secret_fedcba9876543210"
NOW = 1_700_000_000
SNAPSHOT = json.dumps(
    {"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}}}
).encode()
THIN = json.dumps(
    {
        "id": "evt_test_65R",
        "object": "v2.core.event",
        "type": "v1.billing.meter.error_report_triggered",
        "related_object": {"id": "mtr_1", "type": "billing.meter"},
    }
).encode()


def sig(body: bytes, t: int = NOW, secret: str = SECRET) -> str:
    """Computed independently of the provider."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def verify(provider: StripeProvider, body: bytes, header: str | None, now: float = NOW) -> Verified:
    return provider.verify(body, {} if header is None else {"stripe-signature": header}, now)


def test_valid_snapshot_event() -> None:
    assert verify(StripeProvider([SECRET]), SNAPSHOT, f"t={NOW},v1={sig(SNAPSHOT)}") == Verified(
        "evt_1", "invoice.paid"
    )


def test_valid_thin_event() -> None:
    result = verify(StripeProvider([SECRET]), THIN, f"t={NOW},v1={sig(THIN)}")
    assert result == Verified("evt_test_65R", "v1.billing.meter.error_report_triggered")


def test_sign_round_trip_and_format() -> None:
    provider = StripeProvider([SECRET, OLD_SECRET])
    headers = provider.sign(SNAPSHOT, NOW + 0.9)
    assert list(headers) == ["Stripe-Signature"]
    assert headers["Stripe-Signature"] == f"t={NOW},v1={sig(SNAPSHOT)}"  # first secret, int(now)
    assert provider.verify(SNAPSHOT, {"stripe-signature": headers["Stripe-Signature"]}, NOW)


def test_signature_headers() -> None:
    assert StripeProvider([SECRET]).signature_headers == frozenset({"stripe-signature"})


def test_tampered_body() -> None:
    with pytest.raises(InvalidSignature):
        verify(StripeProvider([SECRET]), SNAPSHOT + b" ", f"t={NOW},v1={sig(SNAPSHOT)}")


def test_tampered_timestamp() -> None:
    with pytest.raises(InvalidSignature):
        verify(StripeProvider([SECRET]), SNAPSHOT, f"t={NOW + 1},v1={sig(SNAPSHOT)}")


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignature) as exc:
        verify(StripeProvider([OLD_SECRET]), SNAPSHOT, f"t={NOW},v1={sig(SNAPSHOT)}")
    assert SECRET not in str(exc.value) and OLD_SECRET not in str(exc.value)
    assert sig(SNAPSHOT) not in str(exc.value)


@pytest.mark.parametrize("signing_secret", [SECRET, OLD_SECRET])
def test_rotated_secrets_either_matches(signing_secret: str) -> None:
    provider = StripeProvider([SECRET, OLD_SECRET])
    header = f"t={NOW},v1={sig(SNAPSHOT, secret=signing_secret)}"
    assert verify(provider, SNAPSHOT, header).event_id == "evt_1"


def test_whole_secret_string_is_the_key() -> None:
    # Keying with the secret minus "whsec_" (the Standard Webhooks way) must not verify.
    header = f"t={NOW},v1={sig(SNAPSHOT, secret=SECRET.removeprefix('whsec_'))}"
    with pytest.raises(InvalidSignature):
        verify(StripeProvider([SECRET]), SNAPSHOT, header)


def test_missing_header() -> None:
    with pytest.raises(InvalidSignature):
        verify(StripeProvider([SECRET]), SNAPSHOT, None)


@pytest.mark.parametrize("delta", [-301, 301, -10_000, 10_000])
def test_stale_and_future_timestamps(delta: int) -> None:
    t = NOW + delta
    with pytest.raises(StaleTimestamp):
        verify(StripeProvider([SECRET]), SNAPSHOT, f"t={t},v1={sig(SNAPSHOT, t)}")


@pytest.mark.parametrize("delta", [-300, 300])
def test_timestamp_at_the_edge_of_the_window(delta: int) -> None:
    t = NOW + delta
    assert verify(StripeProvider([SECRET]), SNAPSHOT, f"t={t},v1={sig(SNAPSHOT, t)}")


def test_custom_tolerance() -> None:
    t = NOW - 100
    with pytest.raises(StaleTimestamp):
        verify(StripeProvider([SECRET], 60), SNAPSHOT, f"t={t},v1={sig(SNAPSHOT, t)}")


def test_signature_is_checked_before_timestamp() -> None:
    t = NOW - 10_000
    with pytest.raises(InvalidSignature):
        verify(StripeProvider([SECRET]), SNAPSHOT, f"t={t},v1={sig(SNAPSHOT, t, OLD_SECRET)}")


GOOD = sig(SNAPSHOT)


@pytest.mark.parametrize(
    "header",
    [
        "",
        ",",
        "garbage",
        f"v1={GOOD}",  # no t=
        f"t={NOW}",  # no v1
        f"t=,v1={GOOD}",
        f"t=abc,v1={GOOD}",
        f"t=-{NOW},v1={GOOD}",
        f"t={NOW}.0,v1={GOOD}",
        f"t=1_700_000_000,v1={GOOD}",  # int() would accept this
        f"t=\u0661\u0667,v1={GOOD}",  # non-ASCII digits
        f"t={NOW},v1={GOOD[:-2]}",  # short
        f"t={NOW},v1={GOOD}00",  # long
        f"t={NOW},v1=" + "z" * 64,  # non-hex
        f"t={NOW},v0={GOOD}",  # wrong scheme
        f"t={NOW},V1={GOOD}",
        f"t={NOW},v1=sha256={GOOD}",
        f"t={NOW},v1={GOOD}," + "x" * 100_000,  # huge
        f"t={'9' * 5000},v1={GOOD}",
    ],
)
def test_malformed_headers(header: str) -> None:
    with pytest.raises(InvalidSignature):
        verify(StripeProvider([SECRET]), SNAPSHOT, header)


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW},v1={'0' * 64},v1={GOOD}",
        f"t={NOW},v1={GOOD},v1={'0' * 64}",
        f"t={NOW},v1=nothex,v1={GOOD},v0={'1' * 64}",
        f"v1={GOOD},t={NOW}",  # order does not matter
        f"t={NOW}, v1={GOOD}",  # stray space
        f"t={NOW},v1={GOOD.upper()}",
        f"t={NOW},v1={'a' * 64},scheme=x,v1={sig(SNAPSHOT, secret=OLD_SECRET)},v1={GOOD}",
    ],
)
def test_several_entries_one_good(header: str) -> None:
    assert verify(StripeProvider([SECRET]), SNAPSHOT, header).event_id == "evt_1"


def test_only_32_signatures_are_considered() -> None:
    bad = ",".join(f"v1={i:064x}" for i in range(32))
    with pytest.raises(InvalidSignature):
        verify(StripeProvider([SECRET]), SNAPSHOT, f"t={NOW},{bad},v1={GOOD}")
    bad = ",".join(f"v1={i:064x}" for i in range(31))
    assert verify(StripeProvider([SECRET]), SNAPSHOT, f"t={NOW},{bad},v1={GOOD}")


def test_oversized_header_is_rejected_even_with_a_good_signature() -> None:
    padding = ",v0=" + "0" * 64
    header = f"t={NOW},v1={GOOD}" + padding * 200
    assert len(header) > 8192
    with pytest.raises(InvalidSignature, match="too long"):
        verify(StripeProvider([SECRET]), SNAPSHOT, header)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"evt_1"',
        b'{"type": "invoice.paid"}',
        b'{"id": 1, "type": "invoice.paid"}',
        b'{"id": "", "type": "invoice.paid"}',
        b'{"id": "evt_1"}',
        b'{"id": "evt_1", "type": null}',
        b'{"id": "evt_1", "type": "x", "amount": NaN}',
    ],
)
def test_invalid_payload_after_valid_signature(body: bytes) -> None:
    with pytest.raises(InvalidPayload):
        verify(StripeProvider([SECRET]), body, f"t={NOW},v1={sig(body)}")


@pytest.mark.parametrize(
    ("secrets", "tolerance", "message"),
    [
        ([], 300, "must not be empty"),
        ([""], 300, "secrets\\[0\\] is empty"),
        ([SECRET, "  "], 300, "secrets\\[1\\] is empty"),
        (SECRET, 300, "list of strings"),
        ([SECRET], 0, "positive"),
    ],
)
def test_bad_config(secrets: list[str], tolerance: int, message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        StripeProvider(secrets, tolerance)
    assert SECRET not in str(exc.value)


def test_sign_matches_documented_header_shape() -> None:
    header = StripeProvider([SECRET]).sign(b"{}", NOW)["Stripe-Signature"]
    assert re.fullmatch(rf"t={NOW},v1=[0-9a-f]{{64}}", header)
