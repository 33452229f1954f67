"""verify() rejects any garbage with a VerificationError, never with another exception."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hookline.providers as providers
from hookline.providers import (
    GitHubProvider,
    HmacProvider,
    InvalidPayload,
    InvalidSignature,
    SlackProvider,
    StaleTimestamp,
    StandardProvider,
    StripeProvider,
    VerificationError,
)

NOW = 1_700_000_000
AnyProvider = StripeProvider | GitHubProvider | SlackProvider | HmacProvider | StandardProvider
PROVIDERS: list[AnyProvider] = [
    StripeProvider(["whsec_robust"]),
    GitHubProvider(["robust"]),
    SlackProvider(["robust"]),
    HmacProvider(
        ["robust"],
        "X-Slack-Signature",
        signature_prefix="v0=",
        signed_content="v0:{timestamp}:{body}",
        timestamp_header="X-Slack-Request-Timestamp",
        id_field="event_id",
        type_field="event.type",
    ),
    HmacProvider(
        ["robust"],
        "X-Shopify-Hmac-Sha256",
        encoding="base64",
        id_header="X-Shopify-Webhook-Id",
        type_header="X-Shopify-Topic",
    ),
    HmacProvider(["robust"], "X-Sig", algorithm="sha1"),
    StandardProvider(["whsec_" + base64.b64encode(b"robust").decode()]),
]
HEADER_NAMES = [
    "content-type",
    "stripe-signature",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-github-delivery",
    "x-github-event",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-shopify-hmac-sha256",
    "x-shopify-webhook-id",
    "x-shopify-topic",
    "x-sig",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
]
# Pieces of real headers, so generated values get deep into the parsers.
FRAGMENTS = [
    *("t=", "v1=", "v0=", "v1,", "v1a,", "sha256=", "sha1=", ",", " ", "=", "==", "\t"),
    *(str(NOW), "-1", "1e9", "0" * 64, "a" * 64, "A" * 43 + "=", "\u0661", "\ud800", "\x00"),
    *("application/x-www-form-urlencoded", "application/json", ";charset=utf-8"),
]
FORM_KEYS = ["payload", "command", "ssl_check", "type", "event_id", "%", "&", "="]
header_values = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=10).map("".join),
    st.integers(min_value=0, max_value=300_000).map(lambda n: "v1=" * (n // 3)),
)
bodies = st.one_of(
    st.binary(max_size=64),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=6,
    ).map(lambda value: json.dumps(value).encode()),
    # urlencoded forms, with and without a JSON payload field (Slack, GitHub)
    st.lists(st.tuples(st.sampled_from(FORM_KEYS) | st.text(max_size=6), st.text(max_size=12))).map(
        lambda pairs: urlencode(pairs).encode()
    ),
    st.recursive(
        st.none() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=6,
    ).map(lambda value: urlencode({"payload": json.dumps(value)}).encode()),
)


@settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.sampled_from(PROVIDERS),
    bodies,
    st.booleans(),
    st.dictionaries(st.sampled_from(HEADER_NAMES) | st.text(max_size=10), header_values),
    st.one_of(st.just(float(NOW)), st.floats()),
)
def test_verify_only_raises_verification_errors(
    provider: AnyProvider,
    body: bytes,
    start_signed: bool,
    mutations: dict[str, str],
    now: float,
) -> None:
    # Half the time start from a correct signature, so the timestamp and payload
    # checks behind it see garbage too.
    headers = {k.lower(): v for k, v in provider.sign(body, NOW).items()} if start_signed else {}
    headers.update(mutations)
    try:
        provider.verify(body, headers, now)
    except VerificationError as exc:
        assert type(exc) in (InvalidSignature, StaleTimestamp, InvalidPayload)
        assert "robust" not in str(exc)


def test_exports() -> None:
    assert providers.PROVIDER_NAMES == ("stripe", "github", "slack", "hmac", "standard")
    for name in providers.__all__:
        assert hasattr(providers, name)
    assert providers.REDACTED == "[redacted]"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_signature_headers_are_lower_case(
    provider: AnyProvider,
) -> None:
    assert provider.signature_headers
    assert all(name == name.lower() for name in provider.signature_headers)
