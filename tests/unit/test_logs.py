"""``hookline.logs``: one JSON object per line, with the record's ``extra`` fields."""

from __future__ import annotations

import json
import logging
import re
import sys
from decimal import Decimal

import pytest

from hookline.logs import JsonFormatter

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def record(msg: str = "webhook", **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("hookline.test")
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, (), None, extra=extra)


def test_a_line_is_one_json_object_with_the_extra_fields() -> None:
    line = JsonFormatter().format(record(source="stripe", status=200, ms=1.5, id=None))
    assert "\n" not in line
    entry = json.loads(line)
    assert TIMESTAMP.fullmatch(entry.pop("ts"))
    assert entry == {
        "level": "info",
        "logger": "hookline.test",
        "msg": "webhook",
        "source": "stripe",
        "status": 200,
        "ms": 1.5,
        "id": None,
    }


def test_the_timestamp_is_the_records_utc_time_in_milliseconds() -> None:
    formatter = JsonFormatter()
    first, second = record(), record()
    first.created, first.msecs = 1_800_000_000.25, 250.0
    second.created, second.msecs = 1_800_000_001.007, 7.0  # the next second
    assert json.loads(formatter.format(first))["ts"] == "2027-01-15T08:00:00.250Z"
    assert json.loads(formatter.format(second))["ts"] == "2027-01-15T08:00:01.007Z"
    assert json.loads(formatter.format(first))["ts"] == "2027-01-15T08:00:00.250Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.5"), "1.5"),  # not JSON: written as its str()
        (2**70, 2**70),  # beyond 64 bits: the json fallback keeps it a number
        ({1: "a"}, {"1": "a"}),  # non-string keys
        ("Montréal, Élodie", "Montréal, Élodie"),
    ],
)
def test_any_value_is_written(value: object, expected: object) -> None:
    assert json.loads(JsonFormatter().format(record(value=value)))["value"] == expected


def test_an_exception_is_written_with_its_traceback() -> None:
    logger = logging.getLogger("hookline.test")
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    entry = json.loads(JsonFormatter().format(rec))
    assert entry["level"] == "error"
    assert "ValueError: boom" in entry["exc"]
