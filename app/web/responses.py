"""JSON responses and the one place that maps failures to HTTP answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def dumps(content: Any, *, indent: bool = False) -> bytes:
    """JSON bytes of ``content``; ``orjson.Fragment`` values are embedded as they are."""
    try:
        return orjson.dumps(content, option=orjson.OPT_INDENT_2 if indent else 0)
    except TypeError:  # nested deeper than orjson writes (254), an int over 64 bits, or a
        # lone surrogate (ensure_ascii writes it as an escape, so it encodes)
        return json.dumps(
            content,
            indent=2 if indent else None,
            separators=None if indent else (",", ":"),
            default=_fragment,
        ).encode()


def fragment_text(fragment: orjson.Fragment) -> str:
    """The JSON text an ``orjson.Fragment`` holds (it does not give it back otherwise)."""
    return orjson.dumps([fragment])[1:-1].decode()


def _fragment(value: Any) -> Any:
    """An ``orjson.Fragment`` (already JSON text) as its value, for the stdlib fallback."""
    if isinstance(value, orjson.Fragment):
        return json.loads(fragment_text(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSON:
    return JSON({"error": code, "detail": detail}, status_code=status, headers=headers)
