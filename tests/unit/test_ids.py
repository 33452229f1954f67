"""``new_id``: a ULID in Crockford base32 — time first, so ids sort by creation."""

from __future__ import annotations

import pytest

from hookline import ids
from hookline.ids import new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def reference(prefix: str, millis: int, rand: bytes) -> str:
    """The ULID text by its definition: 48-bit time then 80 random bits, 5 bits a char."""
    value = millis << 80 | int.from_bytes(rand, "big")
    return prefix + "_" + "".join(CROCKFORD[value >> (5 * k) & 31] for k in range(25, -1, -1))


@pytest.mark.parametrize(
    ("millis", "rand"),
    [
        (0, bytes(10)),
        ((1 << 48) - 1, b"\xff" * 10),
        (1_764_460_800_123, bytes(range(10))),
        (1_700_000_000_000, b"\x80" + bytes(9)),
    ],
)
def test_an_id_is_the_ulid_of_its_time_and_random_bits(
    monkeypatch: pytest.MonkeyPatch, millis: int, rand: bytes
) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: millis * 1_000_000 + 999_999)
    monkeypatch.setattr(ids.os, "urandom", lambda n: rand[:n])
    made = new_id("evt")
    assert made == reference("evt", millis, rand)
    assert len(made) == len("evt_") + 26 and set(made[4:]) <= set(CROCKFORD)


def test_ids_sort_by_time_and_differ_within_a_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_000, 1_000, 1_001, 2_000_000_000_000])
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(clock) * 1_000_000)
    made = [new_id("run") for _ in range(4)]
    assert made[0] != made[1]  # same millisecond: the random part
    assert made[1] < made[2] < made[3] and made[0] < made[2]
