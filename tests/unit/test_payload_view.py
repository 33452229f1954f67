"""The one rule that shows a stored body (admin API, dashboard, CLI): any body, whatever it
holds, gives valid JSON of the same data, or a bounded page; never an exception."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookline.payload_view import PAGE_MAX_BYTES, page_view, payload_json
from hookline.pipeline import parse_data
from tests.unit.providers.test_provider_hostile_bodies import data

FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


def _same(shown: bytes, body: bytes, headers: dict[str, str]) -> None:
    try:
        assert json.loads(shown) == parse_data(body, headers)
    except RecursionError:  # deeper than the stdlib reads: orjson reads up to 1024 levels
        assert orjson.loads(shown) is not None


bodies = st.one_of(
    data.map(lambda d: (json.dumps(d).encode(), JSON)),
    data.map(lambda d: (urlencode({"payload": json.dumps(d)}).encode(), FORM)),
    st.binary(max_size=64).map(lambda b: (b, JSON)),
    st.integers(min_value=250, max_value=1020).map(lambda n: (b"[" * n + b"1" + b"]" * n, JSON)),
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(bodies)
def test_any_body_is_shown_as_json_of_its_data(case: tuple[bytes, dict[str, str]]) -> None:
    body, headers = case
    shown = payload_json(body, headers)
    if parse_data(body, headers) is None:
        assert shown == b"null" or body.strip() == b"null"
    else:
        _same(shown, body, headers)
    _same(payload_json(body, headers, indent=True), body, headers)
    view = page_view(body, headers)
    assert view.kind in ("json", "form", "text")


def test_a_large_body_is_cut_unparsed() -> None:
    body = b"[" + b",".join(b"%d" % n for n in range(100_000)) + b"]"
    view = page_view(body, JSON)
    assert view.kind == "cut" and view.size == len(body)
    assert len(view.text) == PAGE_MAX_BYTES and view.text.startswith("[0,1,2")


def test_what_orjson_cannot_write_is_shown_as_sent() -> None:
    body = b'{"a": "\\ud800", "n": 1%s}' % (b"0" * 400)
    assert payload_json(body, JSON) == body
    assert json.loads(payload_json(body, JSON)) == {"a": "\ud800", "n": 10**400}


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data)
def test_the_data_of_a_body_is_the_value_sent(value: object) -> None:
    """What handlers and operators see is the sender's value: an integer past 64 bits, which
    orjson reads as a float, stays that integer, as JSON and as a form's payload field."""
    text = json.dumps(value)
    sent = json.loads(text)  # the stdlib's reading: exact integers ("\\ud800\\udfff" is one pair)
    assert parse_data(text.encode(), JSON) == sent
    assert parse_data(urlencode({"payload": text}).encode(), FORM) == sent


def test_integers_just_past_64_bits_stay_integers() -> None:
    for number in (2**64, -(2**63) - 1, 10**29, 2**63 - 1, -(2**63), 2**64 - 1):
        data = parse_data(b'{"n": %d, "s": "%d"}' % (number, number), JSON)
        assert data == {"n": number, "s": str(number)} and type(data["n"]) is int
