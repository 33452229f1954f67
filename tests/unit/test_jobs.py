"""``hookline.jobs``: header parsing and what makes two payloads "the same request"."""

from __future__ import annotations

import pytest

from hookline.jobs import canonical_json, parse_delay, parse_idempotency_key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("order-42", "order-42"),
        ("  spaced  ", "spaced"),
        ('"quoted"', "quoted"),
        ('"with \\"quotes\\" and \\\\"', 'with "quotes" and \\'),
        ('"has space"', "has space"),
        ("k" * 255, "k" * 255),
        ('"' + "k" * 255 + '"', "k" * 255),
    ],
)
def test_idempotency_keys_bare_or_as_sf_strings(raw: str, key: str) -> None:
    assert parse_idempotency_key(raw) == key


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ('""', "empty"),
        ("k" * 256, "longer than 255"),
        ("caf\xe9", "printable ASCII"),
        ("tab\there", "printable ASCII"),
        ('"open', "must end with"),
        ('"bad \\n escape"', "may be escaped"),
        ('"in"side"', 'must be \\\\"'),
    ],
)
def test_bad_idempotency_keys(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match="Idempotency-Key") as caught:
        parse_idempotency_key(raw)
    assert message.replace("\\\\", "\\") in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("30", 30),
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("0", 0),
        ("999d", 999 * 86400),
    ],
)
def test_delays(raw: str, seconds: float) -> None:
    assert parse_delay(raw) == seconds


@pytest.mark.parametrize("raw", ["", "soon", "-5", "1.5s", "5 m", "1000d", "123456789", "1w"])
def test_bad_delays(raw: str) -> None:
    with pytest.raises(ValueError, match="Hookline-Delay"):
        parse_delay(raw)


def test_canonical_json_ignores_key_order_and_spacing_but_not_values() -> None:
    assert canonical_json({"b": [1, {"y": 2, "x": 1}], "a": "é"}) == canonical_json(
        {"a": "é", "b": [1, {"x": 1, "y": 2}]}
    )
    assert canonical_json({"a": 1}) != canonical_json({"a": 1.0})
    assert canonical_json({"n": 2**70}) == b'{"n":1180591620717411303424}'  # past orjson's ints
