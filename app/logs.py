"""Structured logs: one JSON object per line on stderr.

Records carry their fields in ``extra=``; nothing here ever formats headers or
bodies, and callers never pass secrets or signatures.

Every webhook request logs a line, so formatting is on the ingest hot path: the
timestamp's date part is formatted once per second, the line is encoded by orjson
(falling back to ``json`` for what orjson refuses, such as integers over 64 bits),
and records skip the fields no line shows (process, thread and their names). On an
event loop, the lines of one turn of the loop leave in one write (``LineHandler``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SKIPPED = _STANDARD | {"color_message"}


class JsonFormatter(logging.Formatter):
    """``redact`` (``hookline.redaction.Redactor``) is applied to each whole line, so a
    secret in a message, a field or a traceback never reaches the log."""

    def __init__(self, redact: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # one tuple: replaced atomically
        self._redact = redact

    def _timestamp(self, created: float, msecs: float) -> str:
        second, text = self._second
        if second != int(created):
            second = int(created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _SKIPPED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._line(entry)

    def info_line(self, logger: str, msg: str, fields: dict[str, Any]) -> str:
        """The line ``format`` makes of ``logger.info(msg, extra=fields)``, now."""
        created = time.time()
        msecs = (created - int(created)) * 1000
        entry = {"ts": self._timestamp(created, msecs), "level": "info", "logger": logger}
        entry["msg"] = msg
        entry.update(fields)
        return self._line(entry)

    def _line(self, entry: dict[str, Any]) -> str:
        try:
            line = orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits
            line = json.dumps(entry, default=str)
        return self._redact(line) if self._redact is not None else line


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the lines of one turn of an event loop at once.

    A write to stderr is a system call, and at thousands of requests a second one per
    line was a tenth of the event loop's time. A line logged on a running loop is held
    until the end of the loop's current turn (``call_soon``), so it is late by at most
    that turn; a warning or worse, and any line from a thread without a loop, is written
    at once, after the lines held before it (the order is kept). ``flush()`` (at exit,
    ``logging.shutdown``) writes what is held.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._held: list[str] = []
        self._flushing: set[asyncio.AbstractEventLoop] = set()  # loops with a write queued

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._deliver(line, record)

    def deliver_info(self, line: str) -> None:
        """An info line made without a LogRecord (``info``)."""
        with self.lock:  # type: ignore[union-attr]
            self._deliver(line, None)

    def _deliver(self, line: str, record: logging.LogRecord | None) -> None:
        self._held.append(line)
        if record is None or record.levelno < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                if loop in self._flushing:
                    return
                try:
                    loop.call_soon(self._write_held_of, loop)
                except RuntimeError:  # the loop is closing: write now
                    pass
                else:
                    self._flushing.add(loop)
                    return
        self._write_held(record)

    def _write_held_of(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_held(None)

    def _write_held(self, record: logging.LogRecord | None) -> None:
        # Whatever was held is written now: a write queued on a loop (even one closed
        # since) has nothing left to do, and the next line on a loop queues a new one.
        self._flushing.clear()
        if not self._held:
            return
        text = "\n".join(self._held) + "\n"
        self._held.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            if record is not None:
                self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_held(None)
            super().flush()


def info(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """``logger.info(msg, extra=fields)`` for a line logged on every request.

    The standard path (a LogRecord, a walk up the stack for the caller, filters, two
    locks, a formatter reading the record's attributes) measured ~20 µs a line, a fifth
    of a webhook's CPU; the line itself costs ~2 µs. When hookline's own handler is the
    only one the line reaches (``configure_logging``), the line is made and handed to it
    directly: the same line. Otherwise (a test's capture, another handler, a filter,
    the logger switched off) the standard path is taken.
    """
    handler = _direct
    if handler is None or not _only_to(handler, logger):
        logger.info(msg, extra=fields)
        return
    assert isinstance(handler.formatter, JsonFormatter)
    handler.deliver_info(handler.formatter.info_line(logger.name, msg, fields))


def _only_to(handler: LineHandler, logger: logging.Logger) -> bool:
    """Whether an info line of ``logger`` would reach ``handler`` alone, unfiltered."""
    if logger.disabled or not logger.isEnabledFor(logging.INFO):
        return False
    if handler.filters or not isinstance(handler.formatter, JsonFormatter):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return False
        if current is logging.root:
            return current.handlers == [handler]
        if current.handlers or not current.propagate:
            return False
        current = current.parent
    return False


_direct: LineHandler | None = None  # the handler configure_logging installed


def _log_uncaught(
    kind: type[BaseException], exc: BaseException, tb: types.TracebackType | None
) -> None:
    logging.getLogger("hookline").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # as the default hook: a thread's sys.exit() is no error
    thread = args.thread.name if args.thread is not None else None
    logging.getLogger("hookline").critical(
        "uncaught exception in a thread",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        extra={"thread_name": thread},
    )


def configure_logging(level: str = "INFO", redact: Callable[[str], str] | None = None) -> None:
    global _direct
    handler = LineHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact))
    _direct = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No line shows them, and each costs a lookup (getpid is a system call) per record.
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False
    # warnings.warn (a handler's, a library's) and uncaught exceptions (of the process, of a
    # thread) as log lines too: JSON, secrets redacted, never a bare traceback on stderr
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    # uvicorn's own access log would duplicate ours, without the outcome.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
