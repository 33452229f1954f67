"""Identifiers: a short prefix, then a time-ordered, random-suffixed token."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# Every 10-bit value as its two characters: an id is 13 lookups, not 26 divisions (new_id
# runs once or twice per webhook and job on the event loop).
_PAIRS = tuple(high + low for high in _ALPHABET for low in _ALPHABET)
_SHIFTS = tuple(range(120, -1, -10))  # 130 bits: 48 of milliseconds (in 50), 80 random


def new_id(prefix: str) -> str:
    """``evt_`` + 10 chars of milliseconds + 16 random chars (a ULID in Crockford base32)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return prefix + "_" + "".join([_PAIRS[value >> shift & 1023] for shift in _SHIFTS])
