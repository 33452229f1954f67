"""Generic HMAC signatures, configured per source (Shopify, Slack and the like).

Shopify: ``X-Shopify-Hmac-Sha256: base64(HMAC-SHA256(body))``.
Slack: ``X-Slack-Signature: v0=hex(HMAC-SHA256("v0:{timestamp}:{body}"))`` with the
timestamp from ``X-Slack-Request-Timestamp``.

The body is spliced into ``signed_content`` as raw bytes, never decoded and re-encoded,
so any byte sequence the sender signed verifies. ``id_field``/``type_field`` read the
body's data (JSON, or a urlencoded form: see ``hookline.providers.body``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from hookline.providers._util import (
    any_match,
    check_secrets,
    check_tolerance,
    check_window,
    decode_base64,
    decode_hex,
    json_path,
    parse_timestamp,
    signature_header,
)
from hookline.providers.base import InvalidPayload, InvalidSignature, Verified
from hookline.providers.body import decode_body

ALGORITHMS = ("sha1", "sha256", "sha512")
ENCODINGS = ("hex", "base64")
_PLACEHOLDER = re.compile(r"(\{timestamp\}|\{body\})")


def _path(name: str, value: str) -> tuple[str, ...]:
    path = tuple(value.split(".")) if value else ()
    if any(not key for key in path):
        raise ValueError(f"{name} {value!r} is not a dotted path like 'event.id'")
    return path


class HmacProvider:
    """One configurable HMAC scheme; see ``[[sources]]`` with ``provider = "hmac"``."""

    def __init__(
        self,
        secrets: Sequence[str],
        signature_header: str,
        algorithm: str = "sha256",
        encoding: str = "hex",
        signature_prefix: str = "",
        signed_content: str = "{body}",
        timestamp_header: str = "",
        tolerance_seconds: int = 300,
        id_header: str = "",
        id_field: str = "",
        type_header: str = "",
        type_field: str = "",
    ) -> None:
        self._keys = tuple(secret.encode() for secret in check_secrets(secrets))
        if not signature_header:
            raise ValueError("signature_header is required")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
        if "{body}" not in signed_content:
            raise ValueError("signed_content must contain {body}")
        # A timestamp outside the signed content could be rewritten by anyone, so its
        # window would protect nothing; one inside it needs a header to come from.
        if "{timestamp}" in signed_content and not timestamp_header:
            raise ValueError("signed_content uses {timestamp} but timestamp_header is not set")
        if timestamp_header and "{timestamp}" not in signed_content:
            raise ValueError("timestamp_header is set but signed_content has no {timestamp}")
        if id_header and id_field:
            raise ValueError("set id_header or id_field, not both")
        if type_header and type_field:
            raise ValueError("set type_header or type_field, not both")

        self._header = signature_header.lower()
        self._header_name = signature_header
        self._algorithm = algorithm
        self._digest_size = hashlib.new(algorithm).digest_size
        self._encoding = encoding
        self._prefix = signature_prefix
        # Split once into literal text and placeholders, so a body that happens to contain
        # "{timestamp}" is never substituted into.
        self._template = [p for p in _PLACEHOLDER.split(signed_content) if p]
        self._timestamp_header = timestamp_header.lower()
        self._timestamp_header_name = timestamp_header
        self._tolerance = check_tolerance(tolerance_seconds)
        self._id_header, self._id_path = id_header.lower(), _path("id_field", id_field)
        self._type_header, self._type_path = type_header.lower(), _path("type_field", type_field)
        self.signature_headers: frozenset[str] = frozenset({self._header})
        self.id_unsigned = bool(self._id_header)  # headers are never in the signed content

    def _content(self, body: bytes, timestamp: str) -> bytes:
        parts = {"{body}": body, "{timestamp}": timestamp.encode()}
        return b"".join(parts[p] if p in parts else p.encode() for p in self._template)

    def _digest(self, key: bytes, content: bytes) -> bytes:
        return hmac.new(key, content, self._algorithm).digest()

    def _decode(self, value: str) -> bytes | None:
        if not value.startswith(self._prefix):
            return None
        value = value[len(self._prefix) :]
        if self._encoding == "hex":
            return decode_hex(value, self._digest_size)
        return decode_base64(value, self._digest_size)

    def _signed_headers(self, headers: Mapping[str, str]) -> tuple[bytes, str]:
        signature = self._decode(signature_header(headers, self._header))
        if signature is None:
            raise InvalidSignature(f"{self._header} header is malformed")
        timestamp = ""
        if self._timestamp_header:
            timestamp = signature_header(headers, self._timestamp_header)
            if parse_timestamp(timestamp) is None:
                raise InvalidSignature(f"{self._timestamp_header} is not a Unix timestamp")
        return signature, timestamp

    def check_headers(self, headers: Mapping[str, str], now: float) -> None:
        _, timestamp = self._signed_headers(headers)
        if self._timestamp_header:
            check_window(int(timestamp), now, self._tolerance)
        for name, what in ((self._id_header, "id"), (self._type_header, "type")):
            if name and not headers.get(name):
                raise InvalidPayload(f"event {what} (header {name}) is missing")

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> Verified:
        signature, timestamp = self._signed_headers(headers)
        content = self._content(body, timestamp)
        expected = (self._digest(key, content) for key in self._keys)
        if not any_match(expected, [signature]):
            raise InvalidSignature(f"{self._header} did not match")
        if self._timestamp_header:
            check_window(int(timestamp), now, self._tolerance)

        # Parsed only for a field to read: any body a sender signs is stored (its
        # ``Event.data`` is None when it is no JSON or form), ids from headers or the digest.
        payload = decode_body(body, headers) if self._id_path or self._type_path else None
        if self._id_header or self._id_path:
            event_id = self._extract(payload, headers, self._id_header, self._id_path, "id")
        else:
            # Without a provider id, identical bodies are the same event.
            event_id = hashlib.sha256(body).hexdigest()
        event_type = ""
        if self._type_header or self._type_path:
            event_type = self._extract(payload, headers, self._type_header, self._type_path, "type")
        return Verified(event_id=event_id, event_type=event_type)

    @staticmethod
    def _extract(
        payload: object, headers: Mapping[str, str], header: str, path: tuple[str, ...], what: str
    ) -> str:
        value = headers.get(header) if header else json_path(payload, path)
        if not value:
            source = f"header {header}" if header else f"field {'.'.join(path)}"
            raise InvalidPayload(f"event {what} ({source}) is missing")
        return value

    def sign(self, body: bytes, now: float) -> dict[str, str]:
        timestamp = str(int(now))
        digest = self._digest(self._keys[0], self._content(body, timestamp))
        encoded = digest.hex() if self._encoding == "hex" else base64.b64encode(digest).decode()
        headers = {self._header_name: self._prefix + encoded}
        if self._timestamp_header:
            headers[self._timestamp_header_name] = timestamp
        return headers
