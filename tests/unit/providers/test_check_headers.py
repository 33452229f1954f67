"""check_headers: what a provider refuses from the headers alone, before the body is read.

It must never refuse a request that ``verify`` would accept (a sender's real delivery),
must refuse exactly as ``verify`` would for missing headers and stale timestamps, and
must raise nothing but a ``VerificationError`` whatever the headers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
BODY = b'{"id": "evt_1", "type": "invoice.paid", "event_id": "Ev1", "event": {"type": "x"}}'
AnyProvider = StripeProvider | GitHubProvider | SlackProvider | HmacProvider | StandardProvider
GITHUB_EXTRA = {"X-GitHub-Delivery": "d-1", "X-GitHub-Event": "push"}
SHOPIFY_EXTRA = {"X-Shopify-Webhook-Id": "w-1", "X-Shopify-Topic": "orders/create"}
PROVIDERS: dict[str, tuple[AnyProvider, dict[str, str]]] = {
    "stripe": (StripeProvider(["whsec_a", "whsec_b"]), {}),
    "github": (GitHubProvider(["g"]), GITHUB_EXTRA),
    "standard": (StandardProvider(["whsec_dGVzdA=="]), {}),
    "slack": (SlackProvider(["s"]), {}),
    "shopify": (
        HmacProvider(
            ["h"],
            signature_header="X-Shopify-Hmac-Sha256",
            encoding="base64",
            id_header="X-Shopify-Webhook-Id",
            type_header="X-Shopify-Topic",
        ),
        SHOPIFY_EXTRA,
    ),
    "hmac_timestamped": (
        HmacProvider(
            ["h"],
            signature_header="X-Sig",
            signed_content="v0:{timestamp}:{body}",
            timestamp_header="X-Ts",
        ),
        {},
    ),
}
TIMESTAMPED = ("stripe", "standard", "slack", "hmac_timestamped")


def signed(name: str, now: float = NOW) -> dict[str, str]:
    provider, extra = PROVIDERS[name]
    headers = {**provider.sign(BODY, now), **extra}
    return {key.lower(): value for key, value in headers.items()}


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_real_delivery_passes(name: str) -> None:
    provider, _ = PROVIDERS[name]
    headers = signed(name)
    provider.check_headers(headers, NOW + 299)
    provider.verify(BODY, headers, NOW + 299)  # and verify agrees it is fine


@pytest.mark.parametrize("name", PROVIDERS)
def test_no_headers_at_all_is_refused(name: str) -> None:
    provider, _ = PROVIDERS[name]
    with pytest.raises(InvalidSignature):
        provider.check_headers({}, NOW)


@pytest.mark.parametrize("name", TIMESTAMPED)
@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused(name: str, skew: int) -> None:
    provider, _ = PROVIDERS[name]
    with pytest.raises(StaleTimestamp):
        provider.check_headers(signed(name), NOW + skew)


@pytest.mark.parametrize("missing", ["x-github-delivery", "x-github-event"])
def test_github_without_its_delivery_or_event_header_is_refused(missing: str) -> None:
    provider, _ = PROVIDERS["github"]
    headers = signed("github")
    del headers[missing]
    with pytest.raises(InvalidPayload):
        provider.check_headers(headers, NOW)


def test_github_sha1_alone_is_refused() -> None:
    provider, _ = PROVIDERS["github"]
    with pytest.raises(InvalidSignature, match="sha256 is required"):
        provider.check_headers({"x-hub-signature": "sha1=" + "0" * 40, **GITHUB_EXTRA}, NOW)


@pytest.mark.parametrize("name", PROVIDERS)
@settings(max_examples=50, deadline=None)
@given(headers=st.dictionaries(st.text(max_size=30), st.text(max_size=80), max_size=6))
def test_any_headers_raise_only_verification_errors(name: str, headers: dict[str, str]) -> None:
    provider, _ = PROVIDERS[name]
    base = signed(name)
    for merged in (headers, {**base, **{k.lower(): v for k, v in headers.items()}}):
        try:
            provider.check_headers(merged, NOW)
        except VerificationError:
            pass
