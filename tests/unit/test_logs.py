"""``hookline.logs``: one JSON object per line, with the record's ``extra`` fields."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from hookline import logs
from hookline.logs import JsonFormatter, LineHandler, configure_logging
from hookline.redaction import Redactor

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(autouse=True)
def _process_hooks_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure_logging sets process-wide hooks: the rest of the session keeps its own."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    yield
    logging.captureWarnings(False)


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


def test_info_makes_the_line_the_logger_would_make(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = CountingStream()
    monkeypatch.setattr(logging.root, "handlers", list(logging.root.handlers))
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    configure_logging(redact=Redactor(["whsec_topsecret_value"]))
    handler = logging.root.handlers[0]
    assert isinstance(handler, LineHandler)
    handler.setStream(stream)  # type: ignore[arg-type]
    logger = logging.getLogger("hookline.webhooks.test")
    fields = {
        "source": "stripe",
        "status": 200,
        "ms": 1.5,
        "id": None,
        "note": "whsec_topsecret_value",
    }
    with monkeypatch.context() as patched:  # the direct path makes no LogRecord
        patched.setattr(logger, "makeRecord", lambda *a, **k: pytest.fail("a LogRecord"))
        logs.info(logger, "webhook", fields)  # no loop running: written at once
    logger.info("webhook", extra=fields)
    direct, standard = (json.loads(line) for line in "".join(stream.writes).splitlines())
    assert TIMESTAMP.fullmatch(direct.pop("ts")) and TIMESTAMP.fullmatch(standard.pop("ts"))
    assert direct == standard
    assert direct["note"] == "[redacted]"  # the same redaction


def test_info_takes_the_standard_path_for_any_other_handler(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.root, "handlers", list(logging.root.handlers))
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    configure_logging()
    logging.root.addHandler(caplog.handler)
    logger = logging.getLogger("hookline.webhooks.test")
    with caplog.at_level(logging.INFO):
        logs.info(logger, "webhook", {"status": 200})
    assert [(r.getMessage(), getattr(r, "status", None)) for r in caplog.records] == [
        ("webhook", 200)
    ]


UNCAUGHT = """
import threading
from hookline.fork import fork
from hookline.logs import configure_logging
from hookline.redaction import Redactor

configure_logging(redact=Redactor(["sekrit-value-123"]))
thread = threading.Thread(target=lambda: 1 / 0, name="helper")
thread.start()
thread.join()
child = fork("crasher", lambda: (_ for _ in ()).throw(KeyError("in a fork sekrit-value-123")))
child.wait(timeout=10)
raise RuntimeError("boom sekrit-value-123")
"""


def test_an_uncaught_exception_is_a_redacted_json_line() -> None:
    """A thread's, a forked child's and the process's own uncaught exception: JSON lines
    with the secret redacted, never a bare traceback on stderr."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", UNCAUGHT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert [(e["level"], e["msg"]) for e in lines] == [
        ("critical", "uncaught exception in a thread"),
        ("critical", "uncaught exception"),
        ("critical", "uncaught exception"),
    ]
    assert lines[0]["thread_name"] == "helper" and "ZeroDivisionError" in lines[0]["exc"]
    assert "KeyError" in lines[1]["exc"] and "RuntimeError" in lines[2]["exc"]
    assert "sekrit-value-123" not in done.stderr and "[redacted]" in lines[2]["exc"]
