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


def test_a_job_handlers_key_function_sees_the_jobs_event_without_credentials() -> None:
    from typing import Any

    from hookline.config import Settings
    from hookline.jobs import Jobs
    from hookline.pipeline import JOB_SOURCE, Event, HandlerSpec, Registry

    seen: list[Event] = []

    def key(event: Event) -> Any:
        seen.append(event)
        return event.data["customer"]

    async def fn(event: Event, ctx: Any) -> None: ...

    spec = HandlerSpec("h", fn, JOB_SOURCE, "bill", concurrency_key=key)
    jobs = Jobs(Settings(), store=None, registry=Registry([spec]))  # type: ignore[arg-type]
    headers = {"authorization": "Bearer k3y", "x-trace": "t1"}
    job = jobs.build("bill", b'{"customer": 7}', idempotency_key="k1", headers=headers)
    assert job.runs[0].concurrency_key == "7"
    (event,) = seen
    assert event.type == "bill" and event.provider_event_id == "bill/k1" and event.id == job.id
    assert event.headers["x-trace"] == "t1" and "k3y" not in event.headers["authorization"]
    # a schedule's own key wins; a key function that raises leaves the run unkeyed
    assert jobs.build("bill", b"{}", concurrency_key="schedule:s").runs[0].concurrency_key == (
        "schedule:s"
    )
    assert jobs.build("bill", b'{"other": 1}').runs[0].concurrency_key is None
