"""Standard Webhooks (https://www.standardwebhooks.com), as sent by Svix and others.

Headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``; the latter holds
space-separated ``v1,<base64>`` entries, each HMAC-SHA256 over
``b"<id>.<timestamp>." + body``. The key is the base64 text after ``whsec_``, decoded
(unlike Stripe, which keys with the whole string).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from secrets import token_hex

from hookline.providers._util import (
    MAX_HEADER_LENGTH,
    MAX_SIGNATURES,
    any_match,
    check_secrets,
    check_tolerance,
    check_window,
    decode_base64,
    load_json_object,
    parse_timestamp,
    signature_header,
)
from hookline.providers.base import InvalidSignature, Verified

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
_PREFIX = "whsec_"
_VERSION = "v1"
_DIGEST_SIZE = hashlib.sha256().digest_size


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` (or bare base64) secret; padding is optional."""
    text = secret.removeprefix(_PREFIX)
    try:
        key = binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        # Never echo the secret itself.
        raise ValueError("Standard Webhooks secret is not valid base64 after 'whsec_'")
    return key


def _decoded(index: int, secret: str) -> bytes:
    try:
        return decode_secret(secret)
    except ValueError as exc:  # which one of several: the config error names it
        raise ValueError(f"secrets[{index}]: {exc}") from None


class StandardProvider:
    def __init__(self, secrets: Sequence[str], tolerance_seconds: int = 300) -> None:
        self._keys = tuple(_decoded(index, s) for index, s in enumerate(check_secrets(secrets)))
        self._tolerance = check_tolerance(tolerance_seconds)
        self.signature_headers: frozenset[str] = frozenset({SIGNATURE_HEADER})
        self.id_unsigned = False

    def _digest(self, key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
        # surrogatepass: an arbitrary str id must not make verify() raise UnicodeEncodeError.
        prefix = f"{msg_id}.{timestamp}.".encode("utf-8", "surrogatepass")
        return hmac.new(key, prefix + body, hashlib.sha256).digest()

    @staticmethod
    def _signed_headers(headers: Mapping[str, str]) -> tuple[str, str, int, list[bytes]]:
        """The id, the timestamp (as sent and parsed) and the decodable v1 signatures."""
        msg_id = headers.get(ID_HEADER)
        if not msg_id or len(msg_id) > MAX_HEADER_LENGTH:
            raise InvalidSignature(f"missing or oversized {ID_HEADER} header")
        timestamp_text = signature_header(headers, TIMESTAMP_HEADER)
        timestamp = parse_timestamp(timestamp_text)
        if timestamp is None:
            raise InvalidSignature(f"{TIMESTAMP_HEADER} is not a Unix timestamp")

        signatures: list[bytes] = []
        for entry in signature_header(headers, SIGNATURE_HEADER).split():
            version, _, value = entry.partition(",")
            if version != _VERSION:  # e.g. v1a (asymmetric): not ours to check
                continue
            signature = decode_base64(value, _DIGEST_SIZE)
            if signature is not None:
                signatures.append(signature)
                if len(signatures) == MAX_SIGNATURES:
                    break
        if not signatures:
            raise InvalidSignature(f"{SIGNATURE_HEADER} header has no valid v1 signature")
        return msg_id, timestamp_text, timestamp, signatures

    def check_headers(self, headers: Mapping[str, str], now: float) -> None:
        _, _, timestamp, _ = self._signed_headers(headers)
        check_window(timestamp, now, self._tolerance)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> Verified:
        msg_id, timestamp_text, timestamp, signatures = self._signed_headers(headers)
        expected = (self._digest(key, msg_id, timestamp_text, body) for key in self._keys)
        if not any_match(expected, signatures):
            raise InvalidSignature(f"no {SIGNATURE_HEADER} v1 signature matched")
        check_window(timestamp, now, self._tolerance)

        event_type = load_json_object(body).get("type")
        return Verified(
            event_id=msg_id, event_type=event_type if isinstance(event_type, str) else ""
        )

    def sign(self, body: bytes, now: float, *, msg_id: str | None = None) -> dict[str, str]:
        """Signature headers for ``body`` at ``now``.

        The id is part of the signed content. Pass ``msg_id`` to keep an event's captured id
        (e.g. when re-signing for replay); then ``webhook-id`` is not returned, as the caller
        has it. Without it a fresh ``msg_<hex>`` id is made and returned as ``webhook-id``.
        """
        headers: dict[str, str] = {}
        if msg_id is None:
            msg_id = "msg_" + token_hex(16)
            headers[ID_HEADER] = msg_id
        timestamp = str(int(now))
        digest = self._digest(self._keys[0], msg_id, timestamp, body)
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = f"{_VERSION},{base64.b64encode(digest).decode()}"
        return headers
