"""GitHub webhook signatures.

See https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries.

``X-Hub-Signature-256: sha256=<hex>`` is HMAC-SHA256 of the raw body keyed with the
secret. The legacy SHA-1 ``X-Hub-Signature`` is never accepted on its own: SHA-1 is
deprecated, and accepting it would let a downgrade bypass the SHA-256 check.
There is no signed timestamp, so GitHub deliveries have no replay window.

A hook may send ``application/json`` or ``application/x-www-form-urlencoded``; the latter
is one field, ``payload=<the same JSON>``. Both are verified over the raw bytes as sent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from hookline.providers._util import (
    any_match,
    check_secrets,
    decode_hex,
    load_json_object,
    signature_header,
)
from hookline.providers.base import InvalidPayload, InvalidSignature, Verified
from hookline.providers.body import form_payload, is_form, parse_form

HEADER = "x-hub-signature-256"
LEGACY_HEADER = "x-hub-signature"
_PREFIX = "sha256="
_DIGEST_SIZE = hashlib.sha256().digest_size


class GitHubProvider:
    """Verifies GitHub deliveries; the id is ``X-GitHub-Delivery``, the type the event
    name plus the payload's ``action`` when there is one (``pull_request.opened``)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keys = tuple(secret.encode() for secret in check_secrets(secrets))
        # The SHA-1 header is redacted too: it is still a MAC of the body under our secret.
        self.signature_headers: frozenset[str] = frozenset({HEADER, LEGACY_HEADER})
        self.id_unsigned = True  # X-GitHub-Delivery is not signed

    def check_headers(self, headers: Mapping[str, str], now: float) -> None:
        self._signature(headers)
        for name in ("x-github-delivery", "x-github-event"):
            if not headers.get(name):
                raise InvalidPayload(f"missing {name} header")

    @staticmethod
    def _signature(headers: Mapping[str, str]) -> bytes:
        if HEADER not in headers and LEGACY_HEADER in headers:
            raise InvalidSignature("only the SHA-1 x-hub-signature was sent; sha256 is required")
        value = signature_header(headers, HEADER)
        signature = decode_hex(value.removeprefix(_PREFIX), _DIGEST_SIZE)
        if not value.startswith(_PREFIX) or signature is None:
            raise InvalidSignature("x-hub-signature-256 header is not sha256=<hex>")
        return signature

    def verify_signature(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Only the signature check; raises ``InvalidSignature``."""
        signature = self._signature(headers)
        expected = (hmac.new(key, body, hashlib.sha256).digest() for key in self._keys)
        if not any_match(expected, [signature]):
            raise InvalidSignature("x-hub-signature-256 did not match")

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> Verified:
        self.verify_signature(body, headers)
        payload = form_payload(parse_form(body)) if is_form(headers) else load_json_object(body)
        if not isinstance(payload, dict):
            raise InvalidPayload("GitHub payload is not a JSON object")
        delivery = headers.get("x-github-delivery")
        if not delivery:
            raise InvalidPayload("missing x-github-delivery header")
        event = headers.get("x-github-event")
        if not event:
            raise InvalidPayload("missing x-github-event header")
        action = payload.get("action")
        event_type = f"{event}.{action}" if isinstance(action, str) and action else event
        return Verified(event_id=delivery, event_type=event_type)

    def sign(self, body: bytes, now: float) -> dict[str, str]:
        signature = hmac.new(self._keys[0], body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": _PREFIX + signature}
