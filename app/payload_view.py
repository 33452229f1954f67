"""How a stored body is shown: the one rule used by the admin API, the dashboard and the CLI.

Any body a provider verified is shown, whatever it holds. The data is what handlers get
as ``Event.data`` (``hookline.pipeline.parse_data``). orjson writes it when it can; what
orjson cannot write but is still valid JSON — a lone surrogate (``"\\ud800"``), an integer
wider than 64 bits, nesting deeper than 254 levels — is shown as the JSON text the sender
sent (the raw body, or a form's ``payload`` field): the same value, never re-encoded, so
no encoder limit can turn a stored event into a 500.

The dashboard bounds its work before formatting: a body over ``PAGE_MAX_BYTES`` is not
parsed at all; the page shows its first ``PAGE_MAX_BYTES`` as text and says where the
whole of it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from hookline.pipeline import parse_data
from hookline.providers.body import is_form, parse_form

#: Largest body the dashboard parses and pretty-prints; larger ones are shown cut, as text.
PAGE_MAX_BYTES = 64 * 1024

PayloadKind = Literal["json", "form", "text", "cut"]


def _as_received(body: bytes, headers: Mapping[str, str]) -> bytes:
    """The JSON text the data was parsed from: the body, or a form's lone payload field."""
    if is_form(headers):
        payload = parse_form(body).get("payload")
        if isinstance(payload, str):
            return payload.encode("utf-8")
    return body


def _dumps(data: Any, body: bytes, headers: Mapping[str, str], indent: bool) -> bytes:
    try:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 if indent else 0)
    except TypeError:  # valid JSON orjson cannot write: show it as the sender wrote it
        return _as_received(body, headers).strip()


def _unparsed(data: Any, body: bytes) -> bool:
    """The body did not parse (its data is None, and it is not the JSON ``null``)."""
    return data is None and body.strip() != b"null"


def payload_json(body: bytes, headers: Mapping[str, str], *, indent: bool = False) -> bytes:
    """The event's data as JSON text (``null`` when the body does not parse)."""
    return _dumps(parse_data(body, headers), body, headers, indent)


def shown(body: bytes, headers: Mapping[str, str]) -> tuple[orjson.Fragment, str | None]:
    """What the admin API and the CLI show of a body: its data as JSON text (``payload``),
    and, when the body does not parse (an ``hmac`` source's text or XML), the body itself
    as text (``body``; bytes that are no UTF-8 as U+FFFD), so every stored body is
    viewable; None when the payload shows it."""
    data = parse_data(body, headers)
    if _unparsed(data, body):
        return orjson.Fragment(b"null"), body.decode("utf-8", "replace")
    return orjson.Fragment(_dumps(data, body, headers, False)), None


@dataclass(frozen=True, slots=True)
class PageView:
    """The payload as the dashboard shows it: ``text`` and how it was read (``kind``)."""

    text: str
    kind: PayloadKind
    size: int  # of the raw body, in bytes


def page_view(body: bytes, headers: Mapping[str, str]) -> PageView:
    """``json`` pretty-printed, ``form`` parsed (as handlers get it), ``text`` when it does
    not parse, ``cut``: too large to format, its first ``PAGE_MAX_BYTES`` as text."""
    size = len(body)
    if size > PAGE_MAX_BYTES:
        return PageView(body[:PAGE_MAX_BYTES].decode("utf-8", "replace"), "cut", size)
    data = parse_data(body, headers)
    if _unparsed(data, body):
        return PageView(body.decode("utf-8", "replace"), "text", size)
    kind: PayloadKind = "form" if is_form(headers) else "json"
    return PageView(_dumps(data, body, headers, True).decode("utf-8"), kind, size)
