"""``hookline.logs``: one JSON object per line, with the record's ``extra`` fields."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from decimal import Decimal

import pytest

from hookline.logs import JsonFormatter, LineHandler

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


class CountingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def _logger(stream: CountingStream) -> logging.Logger:
    handler = LineHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"hookline.test.lines.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


async def test_the_lines_of_one_turn_of_the_loop_are_one_write() -> None:
    stream = CountingStream()
    logger = _logger(stream)
    for n in range(5):
        logger.info("line %d", n)
    assert stream.writes == []  # held until the turn ends
    await asyncio.sleep(0)
    assert stream.writes == ["".join(f"INFO line {n}\n" for n in range(5))]
    logger.info("next turn")
    await asyncio.sleep(0)
    assert stream.writes[1:] == ["INFO next turn\n"]


async def test_a_warning_is_written_at_once_after_the_lines_before_it() -> None:
    stream = CountingStream()
    logger = _logger(stream)
    logger.info("first")
    logger.warning("trouble")
    assert stream.writes == ["INFO first\nWARNING trouble\n"]
    await asyncio.sleep(0)
    assert stream.writes == ["INFO first\nWARNING trouble\n"]


def test_a_line_without_a_loop_is_written_at_once() -> None:
    stream = CountingStream()
    _logger(stream).info("from a thread")
    assert stream.writes == ["INFO from a thread\n"]


def test_a_line_held_on_a_loop_that_stopped_is_written_by_flush() -> None:
    stream = CountingStream()
    logger = _logger(stream)
    loop = asyncio.new_event_loop()

    def log_then_stop() -> None:
        logger.info("last words")
        loop.stop()  # the loop ends with this turn, before the queued write runs

    loop.call_soon(log_then_stop)
    loop.run_forever()
    loop.close()
    assert stream.writes == []
    logger.handlers[0].flush()  # what logging.shutdown() does at exit
    assert stream.writes == ["INFO last words\n"]
