"""Our Stripe and Standard Webhooks adapters agree with the official libraries.

Both oracles read the wall clock for the timestamp window (stripe-python only rejects
*old* timestamps; standardwebhooks has a fixed 5-minute window), so these tests sign at
the current time and keep every timestamp well inside the window.
"""

from __future__ import annotations

import base64
import json
import string
import time
from datetime import UTC, datetime
from typing import Any

import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from hookline.providers import StandardProvider, StripeProvider, VerificationError

FAST = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
# Ids and types a store can hold (no NUL, no lone surrogate): the others are refused by
# every provider alike (test_provider_robustness.py).
key_chars = st.characters(codec="utf-8", exclude_characters="\x00")
stripe_events = st.fixed_dictionaries(
    {
        "id": st.text(key_chars, min_size=1, max_size=30),
        "object": st.sampled_from(["event", "v2.core.event"]),
        "type": st.text(key_chars, max_size=40),
    },
    optional={"data": json_values, "livemode": st.booleans()},
)
standard_events = st.fixed_dictionaries(
    {"type": st.text(key_chars, max_size=40)},
    optional={"data": json_values, "timestamp": st.text()},
)
ensure_ascii = st.booleans()
# Stripe secrets are whsec_ + alphanumerics; any non-blank text must work the same way.
stripe_secrets = st.one_of(
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=40).map("whsec_".__add__),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(str.strip),
)
standard_secrets = st.binary(min_size=1, max_size=64).map(
    lambda key: "whsec_" + base64.b64encode(key).decode()
)
msg_ids = st.text(key_chars, min_size=1, max_size=40)
skews = st.integers(min_value=-200, max_value=200)  # inside both windows, with clock margin
B64 = string.ascii_letters + string.digits + "+/"


def encode(event: dict[str, Any], ascii_only: bool) -> str:
    return json.dumps(event, ensure_ascii=ascii_only)


def stripe_accepts(payload: bytes, header: str, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, 300)
    except Exception:  # the library raises more than SignatureVerificationError
        return False
    return True


def ours_accepts(
    provider: StripeProvider | StandardProvider, body: bytes, h: dict[str, str]
) -> bool:
    try:
        provider.verify(body, h, time.time())
    except VerificationError:
        return False
    return True


def standard_accepts(payload: bytes, headers: dict[str, str], secret: str) -> bool:
    try:
        Webhook(secret).verify(payload, headers)
    except Exception:
        return False
    return True


def replace_char(text: str, index: int, alphabet: str, choice: int) -> str:
    options = [c for c in alphabet if c != text[index]]
    return text[:index] + options[choice % len(options)] + text[index + 1 :]


def tamper_bytes(body: bytes, index: int, byte: int) -> bytes:
    if not body:
        return bytes([byte])
    index %= len(body)
    new = byte if byte != body[index] else (byte + 1) % 256
    return body[:index] + bytes([new]) + body[index + 1 :]


# --- Stripe ------------------------------------------------------------------------------


@FAST
@given(stripe_events, ensure_ascii, stripe_secrets, stripe_secrets, skews)
def test_stripe_header_from_oracle_verifies_with_ours(
    event: dict[str, Any], ascii_only: bool, secret: str, other: str, skew: int
) -> None:
    payload = encode(event, ascii_only)
    header = stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=int(time.time()) + skew
    )
    result = StripeProvider([other, secret]).verify(
        payload.encode(), {"stripe-signature": header}, time.time()
    )
    assert (result.event_id, result.event_type) == (event["id"], event["type"])


@FAST
@given(stripe_events, ensure_ascii, stripe_secrets, skews)
def test_stripe_header_from_ours_verifies_with_oracle(
    event: dict[str, Any], ascii_only: bool, secret: str, skew: int
) -> None:
    body = encode(event, ascii_only).encode()
    header = StripeProvider([secret]).sign(body, time.time() + skew)["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(body, header, secret, 300)
    if event["object"] == "event":  # construct_event refuses thin events by design
        constructed = stripe.Webhook.construct_event(body, header, secret, 300)
        assert (constructed.id, constructed.type) == (event["id"], event["type"])


@FAST
@given(
    stripe_events,
    stripe_secrets,
    st.sampled_from(["body", "signature", "timestamp", "secret"]),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=255),
    stripe_secrets,
)
def test_stripe_tampering_is_rejected_by_both(
    event: dict[str, Any], secret: str, what: str, index: int, byte: int, other: str
) -> None:
    body = encode(event, True).encode()
    now = int(time.time())
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, now)
    verify_secret = secret
    if what == "body":
        body = tamper_bytes(body, index, byte)
    elif what == "signature":
        at = header.index("v1=") + 3 + index % 64
        header = replace_char(header, at, "0123456789abcdef", byte)
    elif what == "timestamp":
        header = header.replace(f"t={now}", f"t={now + 1 + index % 100}")
    elif other != secret:
        verify_secret = other
    else:
        verify_secret = secret + "x"
    ours = ours_accepts(StripeProvider([verify_secret]), body, {"stripe-signature": header})
    assert ours == stripe_accepts(body, header, verify_secret) is False


# --- Standard Webhooks ---------------------------------------------------------------------


@FAST
@given(standard_events, ensure_ascii, standard_secrets, standard_secrets, msg_ids, skews)
def test_standard_headers_from_oracle_verify_with_ours(
    event: dict[str, Any], ascii_only: bool, secret: str, other: str, msg_id: str, skew: int
) -> None:
    payload = encode(event, ascii_only)
    ts = int(time.time()) + skew
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), payload)
    # Entries of other versions and keys around the good one are skipped, as in the library.
    rotated = Webhook(other).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), payload)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1a,{'A' * 86}== {rotated} {signature}",
    }
    assert standard_accepts(payload.encode(), headers, secret)
    result = StandardProvider([secret]).verify(payload.encode(), headers, time.time())
    assert (result.event_id, result.event_type) == (msg_id, event["type"])


@FAST
@given(standard_events, ensure_ascii, standard_secrets, msg_ids, skews)
def test_standard_headers_from_ours_verify_with_oracle(
    event: dict[str, Any], ascii_only: bool, secret: str, msg_id: str, skew: int
) -> None:
    body = encode(event, ascii_only).encode()
    provider = StandardProvider([secret])
    headers = {"webhook-id": msg_id, **provider.sign(body, time.time() + skew, msg_id=msg_id)}
    assert Webhook(secret).verify(body, headers) == event
    fresh = provider.sign(body, time.time() + skew)  # with a generated webhook-id
    assert Webhook(secret).verify(body, fresh) == event


@FAST
@given(
    standard_events,
    standard_secrets,
    msg_ids,
    st.sampled_from(["body", "signature", "id", "timestamp", "secret"]),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=255),
    standard_secrets,
)
def test_standard_tampering_agrees_with_oracle(
    event: dict[str, Any],
    secret: str,
    msg_id: str,
    what: str,
    index: int,
    byte: int,
    other: str,
) -> None:
    body = encode(event, True).encode()
    provider = StandardProvider([secret])
    headers = {"webhook-id": msg_id, **provider.sign(body, time.time(), msg_id=msg_id)}
    verify_secret = secret
    changed = True
    if what == "body":
        body = tamper_bytes(body, index, byte)
    elif what == "signature":
        original = headers["webhook-signature"]
        at = 3 + index % 43  # one of the 43 base64 characters before the "=" padding
        headers["webhook-signature"] = replace_char(original, at, B64, byte)
        # The last one carries 2 bits of the MAC and 4 bits that decoding ignores.
        changed = base64.b64decode(headers["webhook-signature"][3:]) != base64.b64decode(
            original[3:]
        )
    elif what == "id":
        headers["webhook-id"] = msg_id + chr(ord("a") + byte % 26)
    elif what == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1 + index % 100)
    else:
        verify_secret = other
        changed = base64.b64decode(other[6:]) != base64.b64decode(secret[6:])
    ours = ours_accepts(StandardProvider([verify_secret]), body, headers)
    assert ours == standard_accepts(body, headers, verify_secret)
    assert ours is not changed
