"""Replaying captured webhooks: load fixtures, decide whether to re-sign, send them.

A fixture (SPEC §5) is one JSON file ``{"source", "method", "headers", "body"}``;
``body`` is the raw body as a string, sent as its exact UTF-8 bytes.

Re-signing (the source's first secret, the current time) happens when asked for
(``--resign``), and on its own when the signature is redacted (an exported event) or is
valid but its timestamp is outside the window. A signature that does not match is never
re-signed on its own: a tampered fixture is sent as it is and the server rejects it.

Walking a directory, a symbolic link to a file outside that directory is skipped,
not followed: a fixture tree must not send files from elsewhere on the machine.

Everything here is pure but ``send``, which takes an ``httpx.Client`` (tests give
it a ``MockTransport``). The ``replay`` command in ``hookline.cli_replay`` wires it up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from hookline.errors import HooklineError
from hookline.providers import (
    REDACTED,
    Provider,
    StaleTimestamp,
    StandardProvider,
    VerificationError,
)

#: Headers that describe one connection, not the webhook: httpx sets its own.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUIRED = ("source", "headers", "body")

ResignReason = Literal["forced", "redacted", "stale"]


class FixtureError(HooklineError):
    """A fixture file that cannot be replayed (unreadable, not JSON, wrong shape)."""


@dataclass(frozen=True, slots=True)
class Fixture:
    path: Path
    source: str
    method: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request ready to send to ``/webhooks/{source}``."""

    source: str
    method: str
    headers: dict[str, str]
    body: bytes
    resigned: ResignReason | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The server's answer (``status`` None: no answer, see ``error``)."""

    status: int | None
    event_id: str | None = None
    duplicate: bool | None = None
    error: str | None = None
    detail: str = ""
    handshake: bool = False  # a 200 without an event: Slack's url_verification or ssl_check

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass(slots=True)
class Tally:
    fixtures: int = 0
    sent: int = 0
    accepted: int = 0
    duplicate: int = 0
    failed: int = 0

    def add(self, outcome: Outcome | None) -> None:
        """Count one fixture; ``None`` is one that could not be sent at all."""
        self.fixtures += 1
        if outcome is not None:
            self.sent += 1
        if outcome is None or not outcome.ok:
            self.failed += 1
        elif outcome.duplicate:
            self.duplicate += 1
        else:
            self.accepted += 1


# -- loading -----------------------------------------------------------------------------------


def find_fixtures(paths: Iterable[Path], skipped: list[str] | None = None) -> list[Path]:
    """Files as given; directories searched recursively for ``*.json``, sorted. A link
    found in a directory that leads out of it is left out (why: appended to ``skipped``)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            root = path.resolve()
            for candidate in sorted(p for p in path.rglob("*.json") if p.is_file()):
                if candidate.is_symlink() and not candidate.resolve().is_relative_to(root):
                    if skipped is not None:
                        skipped.append(f"{candidate}: a symbolic link out of {path}; skipped")
                    continue
                found.append(candidate)
        elif path.is_file():
            found.append(path)
        else:
            raise FixtureError(f"{path}: no such file or directory")
    return found


def parse_fixture(raw: bytes, path: Path) -> Fixture:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise FixtureError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise FixtureError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FixtureError("not a JSON object")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise FixtureError(f"missing key(s): {', '.join(missing)}")
    source, method, headers, body = (
        data["source"],
        data.get("method", "POST"),
        data["headers"],
        data["body"],
    )
    if not isinstance(source, str) or not source:
        raise FixtureError("'source' must be a non-empty string")
    if not isinstance(method, str) or not method.isalpha():
        raise FixtureError("'method' must be an HTTP method such as POST")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise FixtureError("'headers' must be an object of strings")
    if not isinstance(body, str):
        raise FixtureError("'body' must be a string (the raw body as sent)")
    try:
        raw_body = body.encode("utf-8")
    except UnicodeEncodeError:
        raise FixtureError("'body' holds text that UTF-8 cannot encode") from None
    return Fixture(path, source, method.upper(), dict(headers), raw_body)


def load_fixture(path: Path) -> Fixture:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FixtureError(f"cannot read ({exc.strerror})") from None
    return parse_fixture(raw, path)


def fixture_from_event(source: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """A stored event as a replayable fixture (its signature stays redacted)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FixtureError("the body is not UTF-8 text, so no fixture can hold it") from None
    kept = {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP}
    return {"source": source, "method": "POST", "headers": kept, "body": text}


# -- re-signing --------------------------------------------------------------------------------


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def resign_reason(
    provider: Provider, body: bytes, headers: Mapping[str, str], now: float, *, force: bool
) -> ResignReason | None:
    """Why this request must be signed afresh, or None to send it as captured.

    ``force`` (``--resign``) signs every fixture. Without it, a fixture is signed afresh
    only when its signature cannot be judged or is merely old: redacted (an exported
    event: replaying it re-signs it), or genuine but stale (it verifies against the
    configured secret; only its timestamp is past the tolerance). A signature that does
    not match is never re-signed on its own, stale or not: a tampered fixture is sent as
    captured, and the server's refusal is the point of replaying it."""
    lowered = _lower(headers)
    if any(lowered.get(name) == REDACTED for name in provider.signature_headers):
        return "redacted"
    if force:
        return "forced"
    try:
        provider.verify(body, lowered, now)
    except StaleTimestamp:  # the signature matched: only its age is wrong
        return "stale"
    except VerificationError:  # tampered or malformed: the server must see it as it is
        return None
    return None


def overlay(
    headers: Mapping[str, str], signed: Mapping[str, str], drop: frozenset[str]
) -> dict[str, str]:
    """``headers`` with the ``signed`` ones put in (case-insensitively, keeping the captured
    spelling and order) and any other header named in ``drop`` removed."""
    fresh = {name.lower(): (name, value) for name, value in signed.items()}
    out: dict[str, str] = {}
    done: set[str] = set()
    for name, value in headers.items():
        low = name.lower()
        if low in fresh:
            if low not in done:
                out[name] = fresh[low][1]
                done.add(low)
        elif low not in drop:
            out[name] = value
    for low, (name, value) in fresh.items():
        if low not in done:
            out[name] = value
    return out


def resign(
    provider: Provider, body: bytes, headers: Mapping[str, str], now: float
) -> dict[str, str]:
    """``headers`` with new signature (and timestamp) headers for ``body`` at ``now``."""
    if isinstance(provider, StandardProvider):
        # The id is signed and is the dedupe key: keep the captured one.
        signed = provider.sign(body, now, msg_id=_lower(headers).get("webhook-id") or None)
    else:
        signed = provider.sign(body, now)
    return overlay(headers, signed, provider.signature_headers)


def prepare(
    fixture: Fixture, *, source: str, provider: Provider | None, now: float, force: bool
) -> Delivery:
    """The request for ``fixture``: re-signed when needed; connection headers and headers
    whose value is redacted (it is not the real value) left out.

    ``provider`` is the configured one of ``source``; None when the config lacks it.
    """
    headers = fixture.headers
    reason: ResignReason | None = None
    if provider is not None:
        reason = resign_reason(provider, fixture.body, headers, now, force=force)
        if reason is not None:
            headers = resign(provider, fixture.body, headers, now)
    elif force:
        raise FixtureError(f"cannot re-sign: source {source!r} is not in the config")
    kept = {
        name: value
        for name, value in headers.items()
        if name.lower() not in HOP_BY_HOP and value != REDACTED
    }
    return Delivery(source, fixture.method, kept, fixture.body, reason)


# -- sending -----------------------------------------------------------------------------------


def default_url(host: str, port: int) -> str:
    """The base URL of a server bound to ``host``: a wildcard address means this machine."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def send(client: httpx.Client, base_url: str, delivery: Delivery) -> Outcome:
    url = f"{base_url.rstrip('/')}/webhooks/{quote(delivery.source, safe='')}"
    try:
        response = client.request(
            delivery.method, url, content=delivery.body, headers=delivery.headers
        )
    except httpx.HTTPError as exc:
        return Outcome(None, error="connection_error", detail=str(exc) or type(exc).__name__)
    except (UnicodeEncodeError, ValueError) as exc:  # e.g. a header value httpx cannot send
        return Outcome(None, error="bad_request", detail=str(exc))
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Outcome(
            response.status_code,
            error=f"http_{response.status_code}",
            detail=response.reason_phrase,
        )
    if response.status_code == 200 and "eventId" in data:
        return Outcome(200, event_id=str(data["eventId"]), duplicate=bool(data.get("duplicate")))
    if response.status_code == 200 and ("challenge" in data or not data):
        return Outcome(200, handshake=True)  # Slack's, verified and answered, never stored
    return Outcome(
        response.status_code,
        error=str(data.get("error") or f"http_{response.status_code}"),
        detail=str(data.get("detail") or response.reason_phrase),
    )
