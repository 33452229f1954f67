"""Structured logs: one JSON object per line on stderr.

Records carry their fields in ``extra=``; nothing here ever formats headers or
bodies, and callers never pass secrets or signatures.

Every webhook request logs a line, so formatting is on the ingest hot path: the
timestamp's date part is formatted once per second, the line is encoded by orjson
(falling back to ``json`` for what orjson refuses, such as integers over 64 bits),
and records skip the fields no line shows (process, thread and their names).
"""

from __future__ import annotations

import json
import logging
import sys
import time
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

    def _timestamp(self, record: logging.LogRecord) -> str:
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _SKIPPED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        try:
            line = orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits
            line = json.dumps(entry, default=str)
        return self._redact(line) if self._redact is not None else line


def configure_logging(level: str = "INFO", redact: Callable[[str], str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No line shows them, and each costs a lookup (getpid is a system call) per record.
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False
    # uvicorn's own access log would duplicate ours, without the outcome.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
