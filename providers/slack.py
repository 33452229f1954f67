"""Slack request signing (https://api.slack.com/authentication/verifying-requests-from-slack).

``X-Slack-Signature: v0=<hex>`` is HMAC-SHA256, keyed with the app's signing secret,
over ``b"v0:" + X-Slack-Request-Timestamp + b":" + body`` (the raw bytes, JSON or form).

What Slack sends, and what hookline makes of it once the signature and the timestamp
window (both directions) passed:

- Events API JSON: ``url_verification`` → a ``Handshake`` answering its ``challenge``;
  ``event_callback`` → id ``event_id`` (so ``X-Slack-Retry-Num`` retries are duplicates),
  type ``event.type``; any other JSON (``app_rate_limited``) → id the body's SHA-256,
  type its ``type``.
- Forms (``application/x-www-form-urlencoded``): interactivity (``payload=<json>``) →
  type the payload's ``type`` (``block_actions``, ``view_submission``, …); a slash command
  (``command=/deploy&…``) → type ``slash_command``; both with the body's SHA-256 as id.
  A signed ``ssl_check=1`` probe is a ``Handshake`` too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from hookline.providers._util import (
    any_match,
    check_secrets,
    check_tolerance,
    check_window,
    decode_hex,
    load_json_object,
    parse_timestamp,
    signature_header,
)
from hookline.providers.base import Handshake, InvalidPayload, InvalidSignature, Verified
from hookline.providers.body import form_payload, is_form, parse_form

SIGNATURE_HEADER = "x-slack-signature"
TIMESTAMP_HEADER = "x-slack-request-timestamp"
_PREFIX = "v0="
_DIGEST_SIZE = hashlib.sha256().digest_size
SLASH_COMMAND = "slash_command"


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidPayload(f"Slack {what} is missing or not a string")
    return value


class SlackProvider:
    """Verifies Slack Events API, slash command and interactivity requests."""

    def __init__(self, secrets: Sequence[str], tolerance_seconds: int = 300) -> None:
        self._keys = tuple(secret.encode() for secret in check_secrets(secrets))
        self._tolerance = check_tolerance(tolerance_seconds)
        self.signature_headers: frozenset[str] = frozenset({SIGNATURE_HEADER})
        self.id_unsigned = False

    def _digest(self, key: bytes, timestamp: str, body: bytes) -> bytes:
        return hmac.new(key, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).digest()

    @staticmethod
    def _signed_headers(headers: Mapping[str, str]) -> tuple[bytes, str]:
        value = signature_header(headers, SIGNATURE_HEADER)
        signature = decode_hex(value.removeprefix(_PREFIX), _DIGEST_SIZE)
        if not value.startswith(_PREFIX) or signature is None:
            raise InvalidSignature(f"{SIGNATURE_HEADER} header is not v0=<hex>")
        timestamp = signature_header(headers, TIMESTAMP_HEADER)
        if parse_timestamp(timestamp) is None:
            raise InvalidSignature(f"{TIMESTAMP_HEADER} is not a Unix timestamp")
        return signature, timestamp

    def check_headers(self, headers: Mapping[str, str], now: float) -> None:
        _, timestamp = self._signed_headers(headers)
        check_window(int(timestamp), now, self._tolerance)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> Verified | Handshake:
        signature, timestamp = self._signed_headers(headers)
        expected = (self._digest(key, timestamp, body) for key in self._keys)
        if not any_match(expected, [signature]):
            raise InvalidSignature(f"{SIGNATURE_HEADER} did not match")
        check_window(int(timestamp), now, self._tolerance)
        return self._form(body) if is_form(headers) else self._json(body)

    @staticmethod
    def _json(body: bytes) -> Verified | Handshake:
        data = load_json_object(body)
        kind = _string(data.get("type"), "request type")
        if kind == "url_verification":
            return Handshake(kind, {"challenge": _string(data.get("challenge"), "challenge")})
        if "event_id" in data:
            event_id = _string(data["event_id"], "event_id")
            event = data.get("event")
            event_type = event.get("type") if isinstance(event, dict) else None
            return Verified(event_id, _string(event_type, "event.type"))
        return Verified(hashlib.sha256(body).hexdigest(), kind)

    @staticmethod
    def _form(body: bytes) -> Verified | Handshake:
        form = parse_form(body)
        body_id = hashlib.sha256(body).hexdigest()
        if "payload" in form:  # interactivity: the whole request is one JSON field
            payload = form_payload(form)
            if not isinstance(payload, dict):
                raise InvalidPayload("Slack interactivity payload is not a JSON object")
            return Verified(body_id, _string(payload.get("type"), "payload type"))
        if form.get("ssl_check") == "1":
            return Handshake("ssl_check", {})
        if isinstance(form.get("command"), str):
            return Verified(body_id, SLASH_COMMAND)
        raise InvalidPayload("Slack form is neither a slash command nor an interactivity payload")

    def sign(self, body: bytes, now: float) -> dict[str, str]:
        timestamp = str(int(now))
        signature = self._digest(self._keys[0], timestamp, body).hex()
        return {"X-Slack-Signature": _PREFIX + signature, "X-Slack-Request-Timestamp": timestamp}
