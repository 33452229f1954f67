"""Identifiers: a short prefix, then a time-ordered, random-suffixed token."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# Every 10-bit value as its two characters: an id is 13 lookups, not 26 divisions (new_id
# runs once or twice per webhook and job on the event loop).
_PAIRS = tuple(high + low for high in _ALPHABET for low in _ALPHABET)
_SHIFTS = tuple(range(120, -1, -10))  # 130 bits: 48 of milliseconds (in 50), 80 random
_RANDOM_BYTES = 10
_POOL_BYTES = 4000  # 400 ids per getrandom(2)


class _RandomPool:
    """The operating system's random bytes, fetched 4 KB at a time.

    ``os.urandom(10)`` per id was a system call per id — measured on this project's
    2-core VMs as a tenth of a webhook's CPU on a busy box, far more than its own cost,
    since each system call costs the code after it its caches. The bytes are the same
    CSPRNG output, handed out once each (under a lock: ids are made on several threads);
    a forked child drops the pool it inherited, so parent and child never share bytes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = b""
        self._taken = 0

    def take(self) -> int:
        with self._lock:
            start = self._taken
            if start + _RANDOM_BYTES > len(self._bytes):
                self._bytes = os.urandom(_POOL_BYTES)
                start = 0
            self._taken = start + _RANDOM_BYTES
            return int.from_bytes(self._bytes[start : start + _RANDOM_BYTES], "big")

    def forget(self) -> None:
        """In a forked child: never hand out what the parent may hand out too."""
        self._lock = threading.Lock()
        self._bytes = b""
        self._taken = 0


_pool = _RandomPool()
os.register_at_fork(after_in_child=_pool.forget)


def new_id(prefix: str) -> str:
    """``evt_`` + 10 chars of milliseconds + 16 random chars (a ULID in Crockford base32)."""
    value = (time.time_ns() // 1_000_000) << 80 | _pool.take()
    return prefix + "_" + "".join([_PAIRS[value >> shift & 1023] for shift in _SHIFTS])
