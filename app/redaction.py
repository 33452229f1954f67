"""Secrets for handlers (``ctx.secrets``) and the redactor that keeps them out of text.

Every configured secret value (``[secrets]``, source secrets, API keys, the admin token, the
notify secret) is replaced by ``[redacted]`` wherever hookline writes text it did not choose:
stored step errors and tracebacks, run errors, log lines, the dashboard.

How values are found:

- Each value, and the forms it takes inside JSON text (escaped quotes, backslashes,
  ``\\uXXXX``), and for a ``whsec_`` key also the part after the prefix (and what that
  decodes to, when it is printable text), since a library may print the key it was given.
- Overlapping or nested values: every occurrence of every value is found, the spans are
  merged, and each merged span becomes one ``[redacted]``; nothing of either value is left.
- **Short values** (under ``SHORT`` = 8 characters) are replaced only where they stand
  alone, not inside a longer word or number: replacing every ``"1234"`` inside timestamps
  and line numbers would shred tracebacks and, by where it cut, point at the value anyway.
  A secret that short is weak; the start-up log warns about it (naming the key, not the
  value).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping

REDACTED = "[redacted]"
SHORT = 8
_WORD = "A-Za-z0-9"


def _forms(value: str) -> set[str]:
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    if value.startswith("whsec_") and len(value) > len("whsec_"):
        key = value.removeprefix("whsec_")
        forms.add(key)
        try:
            decoded = base64.b64decode(key, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if decoded.isprintable():
            forms.add(decoded)
    return {f for f in forms if f}


class Redactor:
    """``redact(text)``: the text with every configured secret value replaced."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            if value:
                forms |= _forms(value)
        ordered = sorted(forms, key=lambda f: (-len(f), f))  # longest first
        self._long = tuple(f for f in ordered if len(f) >= SHORT)
        short = [f for f in ordered if len(f) < SHORT]
        self._short = (
            re.compile(f"(?<![{_WORD}])(?:{'|'.join(re.escape(f) for f in short)})(?![{_WORD}])")
            if short
            else None
        )

    def __bool__(self) -> bool:
        return bool(self._long) or self._short is not None

    def __call__(self, text: str) -> str:
        spans: list[tuple[int, int]] = []
        for value in self._long:  # `in` first: the common case finds nothing, fast
            if value in text:
                start = text.find(value)
                while start != -1:
                    spans.append((start, start + len(value)))
                    start = text.find(value, start + 1)
        if self._short is not None:
            spans.extend(m.span() for m in self._short.finditer(text))
        if not spans:
            return text
        spans.sort()
        merged: list[list[int]] = []
        for start, stop in spans:
            if merged and start <= merged[-1][1]:  # overlapping or touching: one span
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
        out: list[str] = []
        position = 0
        for start, stop in merged:
            out += (text[position:start], REDACTED)
            position = stop
        out.append(text[position:])
        return "".join(out)


REDACT_AT_MOST = 1 << 20


def redacted_cut(
    text: str, limit: int, redact: Callable[[str], str] | None, *, keep_end: bool = False
) -> str:
    """``text`` redacted, then cut to ``limit`` characters (its start, or its end).

    Redacting first: a cut through a secret would leave a fragment no redactor knows. A
    text beyond ``REDACT_AT_MOST`` characters is cut to that first (a 100 MB message costs
    no more); a secret cut at that edge would need the redaction to shrink the text by
    nearly all of it to come within ``limit``.
    """
    if redact is None:
        return text[-limit:] if keep_end else text[:limit]
    stretch = max(REDACT_AT_MOST, 4 * limit)
    if keep_end:
        return redact(text[-stretch:])[-limit:]
    return redact(text[:stretch])[:limit]


class Secrets(Mapping[str, str]):
    """``ctx.secrets``: the ``[secrets]`` values by name. A missing name raises ``KeyError``
    naming it and the names configured, never a value; ``repr`` shows names only."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> str:
        try:
            return self._values[name]
        except KeyError:
            known = ", ".join(sorted(self._values)) or "none"
            raise KeyError(f"no secret named {name!r} in [secrets] (configured: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets({sorted(self._values)})"


def short_secret_names(settings_secrets: Mapping[str, str]) -> list[str]:
    """``[secrets]`` keys whose values are too short to be redacted inside other words."""
    return sorted(name for name, value in settings_secrets.items() if len(value) < SHORT)
