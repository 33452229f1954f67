"""Validly signed hostile bodies, for every provider: lone surrogates, NUL, huge integers and
deep nesting in ids, types and data, as JSON and as forms. ``verify`` either vouches for an id
and a type every store can hold, or raises a ``VerificationError``; never anything else."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookline.providers import Handshake, VerificationError, Verified
from hookline.providers.base import MAX_KEY_BYTES
from tests.unit.providers.test_provider_robustness import NOW, PROVIDERS, AnyProvider

# text with what stores and encoders choke on
hostile_text = st.one_of(
    st.text(max_size=12),
    st.lists(
        st.sampled_from(["\ud800", "\udfff", "\x00", "é", "evt_", "\U0001f600", "x" * 700]),
        max_size=4,
    ).map("".join),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**400),
    hostile_text,
)
data = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)
# shaped like what each provider reads: ids and types where they look for them
events = st.fixed_dictionaries(
    {},
    optional={
        "id": hostile_text,
        "type": st.sampled_from(["event_callback", "block_actions", "url_verification"])
        | hostile_text,
        "event_id": hostile_text,
        "event": st.fixed_dictionaries({}, optional={"type": hostile_text}),
        "action": hostile_text,
        "challenge": hostile_text,
        "data": data,
    },
)


def _deep(depth: int) -> bytes:
    return b'{"id": "evt_deep", "type": "t", "data": %s}' % (b"[" * depth + b"]" * depth)


bodies = st.one_of(
    events.map(lambda e: json.dumps(e).encode()),  # surrogates as their \\u escapes
    events.map(lambda e: urlencode({"payload": json.dumps(e)}).encode()),
    st.lists(
        st.tuples(st.sampled_from(["command", "text", "ssl_check"]), hostile_text), max_size=3
    ).map(
        lambda pairs: urlencode(
            [(k, v.encode("utf-8", "surrogatepass")) for k, v in pairs]
        ).encode()
    ),
    st.integers(min_value=250, max_value=1100).map(_deep),
)
content_types = st.sampled_from(["application/json", "application/x-www-form-urlencoded"])
header_ids = st.text(st.characters(codec="latin-1"), min_size=1, max_size=40)  # as ASGI decodes


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.sampled_from(PROVIDERS), bodies, content_types, header_ids, header_ids)
def test_a_signed_hostile_body_is_vouched_for_storably_or_refused(
    provider: AnyProvider, body: bytes, content_type: str, delivery: str, topic: str
) -> None:
    headers = {k.lower(): v for k, v in provider.sign(body, NOW).items()}
    headers |= {
        "content-type": content_type,
        "x-github-delivery": delivery,
        "x-github-event": topic,
        "x-shopify-webhook-id": delivery,
        "x-shopify-topic": topic,
    }
    headers.setdefault("webhook-id", delivery)
    headers.update({k.lower(): v for k, v in provider.sign(body, NOW).items()})
    try:
        verified = provider.verify(body, headers, NOW)
    except VerificationError:
        return
    if isinstance(verified, Handshake):
        json.dumps(verified.answer)
        return
    assert isinstance(verified, Verified)
    for text in (verified.event_id, verified.event_type):
        assert "\x00" not in text
        assert len(text.encode("utf-8")) <= MAX_KEY_BYTES  # raises on a lone surrogate
