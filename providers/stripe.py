"""Stripe webhook signatures (https://docs.stripe.com/webhooks#verify-manually).

``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]`` where each ``v1`` is
HMAC-SHA256, keyed with the *whole* secret string (``whsec_`` included) as UTF-8,
over ``b"<t>." + body``. Several ``v1`` entries appear while Stripe rolls a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from hookline.providers._util import (
    MAX_SIGNATURES,
    any_match,
    check_secrets,
    check_tolerance,
    check_window,
    decode_hex,
    load_json_object,
    parse_timestamp,
    signature_header,
)
from hookline.providers.base import InvalidPayload, InvalidSignature, Verified

HEADER = "stripe-signature"
_SCHEME = "v1"
_DIGEST_SIZE = hashlib.sha256().digest_size


def _parse_header(value: str) -> tuple[int, list[bytes]]:
    """The timestamp and the decodable ``v1`` signatures; other schemes are ignored."""
    timestamp: int | None = None
    seen_timestamp = False
    signatures: list[bytes] = []
    for item in value.split(","):
        key, _, val = item.strip().partition("=")
        if key == "t" and not seen_timestamp:
            # Like stripe-python, only the first t= counts.
            seen_timestamp = True
            timestamp = parse_timestamp(val)
        elif key == _SCHEME and len(signatures) < MAX_SIGNATURES:
            # A bad entry is skipped rather than fatal: another v1 may still match.
            signature = decode_hex(val, _DIGEST_SIZE)
            if signature is not None:
                signatures.append(signature)
    if timestamp is None:
        raise InvalidSignature("stripe-signature header has no valid t= timestamp")
    if not signatures:
        raise InvalidSignature("stripe-signature header has no valid v1 signature")
    return timestamp, signatures


class StripeProvider:
    """Verifies Stripe snapshot and thin (``v2.core.event``) event deliveries."""

    def __init__(self, secrets: Sequence[str], tolerance_seconds: int = 300) -> None:
        self._keys = tuple(secret.encode() for secret in check_secrets(secrets))
        self._tolerance = check_tolerance(tolerance_seconds)
        self.signature_headers: frozenset[str] = frozenset({HEADER})
        self.id_unsigned = False

    def _digest(self, key: bytes, timestamp: int, body: bytes) -> bytes:
        # Stripe formats the parsed integer, so "t=0123" signs "123.".
        return hmac.new(key, b"%d." % timestamp + body, hashlib.sha256).digest()

    def check_headers(self, headers: Mapping[str, str], now: float) -> None:
        timestamp, _ = _parse_header(signature_header(headers, HEADER))
        check_window(timestamp, now, self._tolerance)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> Verified:
        timestamp, signatures = _parse_header(signature_header(headers, HEADER))
        expected = (self._digest(key, timestamp, body) for key in self._keys)
        if not any_match(expected, signatures):
            raise InvalidSignature("no stripe-signature v1 signature matched")
        check_window(timestamp, now, self._tolerance)

        event = load_json_object(body)
        event_id, event_type = event.get("id"), event.get("type")
        if not isinstance(event_id, str) or not event_id:
            raise InvalidPayload("Stripe event has no string id")
        if not isinstance(event_type, str):
            raise InvalidPayload("Stripe event has no string type")
        return Verified(event_id=event_id, event_type=event_type)

    def sign(self, body: bytes, now: float) -> dict[str, str]:
        timestamp = int(now)
        signature = self._digest(self._keys[0], timestamp, body).hex()
        return {"Stripe-Signature": f"t={timestamp},{_SCHEME}={signature}"}
