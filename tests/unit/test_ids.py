"""``new_id``: a ULID in Crockford base32 — time first, so ids sort by creation."""

from __future__ import annotations

import os
import threading

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
    monkeypatch.setattr(ids, "_pool", ids._RandomPool())
    monkeypatch.setattr(ids.os, "urandom", lambda n: rand * (n // len(rand)))
    made = new_id("evt")
    assert made == reference("evt", millis, rand)
    assert len(made) == len("evt_") + 26 and set(made[4:]) <= set(CROCKFORD)


def test_ids_sort_by_time_and_differ_within_a_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_000, 1_000, 1_001, 2_000_000_000_000])
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(clock) * 1_000_000)
    made = [new_id("run") for _ in range(4)]
    assert made[0] != made[1]  # same millisecond: the random part
    assert made[1] < made[2] < made[3] and made[0] < made[2]


def test_random_bits_are_fetched_in_bulk_and_each_used_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched: list[bytes] = []
    real = os.urandom

    def urandom(n: int) -> bytes:
        fetched.append(real(n))
        return fetched[-1]

    monkeypatch.setattr(ids, "_pool", ids._RandomPool())
    monkeypatch.setattr(ids.os, "urandom", urandom)
    made = [new_id("evt")[-16:] for _ in range(1_000)]
    assert 1 <= len(fetched) <= 3  # 400 ids per fetch, not one system call each
    stream = b"".join(chunk[: len(chunk) - len(chunk) % 10] for chunk in fetched)
    expected = [reference("x", 0, stream[k : k + 10])[-16:] for k in range(0, 10_000, 10)]
    assert made == expected  # every 10 bytes used once, in order


def test_ids_made_on_many_threads_never_repeat() -> None:
    made: list[list[str]] = [[] for _ in range(8)]

    def make(out: list[str]) -> None:
        out.extend(new_id("run") for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in made for i in out]
    assert len(set(every)) == len(every) == 40_000


def test_a_forked_child_never_makes_the_random_part_its_parent_makes() -> None:
    new_id("evt")  # the pool now holds bytes the child inherits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next 100 random parts, to the parent
        try:
            os.write(write, "".join(new_id("evt")[-16:] for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    child = {text[k : k + 16] for k in range(0, len(text), 16)}
    parent = {new_id("evt")[-16:] for _ in range(100)}
    assert len(child) == 100
    assert not child & parent
