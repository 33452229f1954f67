"""Helpers shared by the provider adapters: config checks, bounded header reads,
strict decoding of signatures, constant-time matching and JSON parsing.

Every ``verify`` path funnels untrusted input through these, so they never raise
anything but a ``VerificationError`` subclass (or return ``None`` for "not usable").
"""

from __future__ import annotations

import binascii
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from hookline.providers.base import InvalidPayload, InvalidSignature, StaleTimestamp

#: Longer signature headers are rejected before any parsing (real ones are < 1 KB).
MAX_HEADER_LENGTH = 8192
#: At most this many signatures of the expected scheme are tried per request.
MAX_SIGNATURES = 32

# ASCII digits only: int() would also accept " 1", "+1", "1_0" and non-ASCII digits.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HEX = re.compile(r"[0-9a-fA-F]*")


def check_secrets(secrets: Sequence[str]) -> tuple[str, ...]:
    # A bare string is a Sequence[str] too; iterating it would make each character a secret.
    if isinstance(secrets, str) or not isinstance(secrets, Sequence):
        raise ValueError("secrets must be a list of strings")
    if not secrets:
        raise ValueError("secrets must not be empty")
    for index, secret in enumerate(secrets):
        if not isinstance(secret, str):
            raise ValueError(f"secrets[{index}] must be a string")
        if not secret.strip():
            raise ValueError(f"secrets[{index}] is empty")
    return tuple(secrets)


def check_tolerance(tolerance_seconds: int) -> int:
    if isinstance(tolerance_seconds, bool) or not isinstance(tolerance_seconds, int):
        raise ValueError("tolerance_seconds must be an integer")
    if tolerance_seconds <= 0:
        raise ValueError("tolerance_seconds must be positive")
    return tolerance_seconds


def signature_header(headers: Mapping[str, str], name: str) -> str:
    """The value of a required signature/timestamp header, bounded and ASCII-only."""
    value = headers.get(name)
    if not value:
        raise InvalidSignature(f"missing {name} header")
    if len(value) > MAX_HEADER_LENGTH:
        raise InvalidSignature(f"{name} header is too long")
    if not value.isascii():
        raise InvalidSignature(f"{name} header is not ASCII")
    return value


def parse_timestamp(value: str) -> int | None:
    return int(value) if _TIMESTAMP.fullmatch(value) else None


def check_window(timestamp: int, now: float, tolerance: int) -> None:
    # Both directions: a far-future timestamp would otherwise stay replayable for a long time.
    skew = now - timestamp
    if abs(skew) > tolerance:
        where = "in the past" if skew > 0 else "in the future"
        raise StaleTimestamp(f"timestamp is {abs(skew):.0f}s {where} (tolerance {tolerance}s)")


def decode_hex(value: str, size: int) -> bytes | None:
    """``size`` bytes from hex of either case, or None."""
    if len(value) != 2 * size or not _HEX.fullmatch(value):
        return None
    return bytes.fromhex(value)


def decode_base64(value: str, size: int) -> bytes | None:
    """``size`` bytes from strict, padded standard base64, or None."""
    try:
        raw = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII input
        return None
    return raw if len(raw) == size else None


def any_match(expected: Iterable[bytes], given: Sequence[bytes]) -> bool:
    # No early exit, so the timing does not reveal which secret or entry matched.
    matched = False
    for digest in expected:
        for candidate in given:
            matched |= hmac.compare_digest(digest, candidate)
    return matched


def load_json(body: bytes) -> Any:
    """The body as JSON, fast: for the fields a provider reads (ids and types are strings).
    A number wider than 64 bits may come back as a float; ``load_json_exact`` keeps it."""
    # orjson is strict (no NaN, valid UTF-8 only) and bounds nesting without RecursionError.
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _load_json_stdlib(body)  # e.g. a number orjson cannot hold at all (1e400)


#: Every ASCII digit as "0", to find a run of 19 digits with one ``in``.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19


def load_json_exact(body: bytes) -> Any:
    """The body as JSON, every value as sent: what handlers and operators see.

    orjson reads an integer outside 64 bits (``-9223372036854775809``,
    ``123456789012345678901234567890``) as a float, a different number; such an integer
    has 19 digits or more, so a body with a run of 19 digits is read by the stdlib,
    whose integers are exact (one ``translate``: ~1 µs a KB, docs/benchmarks.md).
    """
    if _LONG_RUN in body.translate(_DIGITS_AS_ZERO):
        return _load_json_stdlib(body)
    return load_json(body)


def _load_json_stdlib(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidPayload("body is not valid JSON") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json_object(body: bytes) -> dict[str, Any]:
    data = load_json(body)
    if not isinstance(data, dict):
        raise InvalidPayload("body is not a JSON object")
    return data


def json_path(data: Any, path: tuple[str, ...]) -> str | None:
    """The string or integer at a dotted path, as a string; None when absent or another type."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    if isinstance(data, str):
        return data
    if isinstance(data, int) and not isinstance(data, bool):
        return str(data)
    return None
