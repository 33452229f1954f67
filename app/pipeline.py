"""The handler API: ``@handler``, ``Event``, ``Context``, ``NonRetryableError``.

Handler modules (``[pipeline] handlers``) decorate async functions::

    @handler("stripe", "invoice.*", max_attempts=5)
    async def on_invoice(event: Event, ctx: Context) -> dict: ...

The decorator only marks the function; ``load_handlers`` imports the configured
modules and collects the marked functions into a ``Registry``, so nothing
depends on import order or on module-level state.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from hookline.context import Context
from hookline.errors import NonRetryableError, PipelineError, StartupError
from hookline.providers import VerificationError
from hookline.providers.body import decode_body

JOB_SOURCE = "jobs"  # events posted through the jobs gateway and schedules use this source
_MARK = "__hookline_handler__"

HandlerFn = Callable[["Event", Context], Awaitable[Any]]
F = TypeVar("F", bound=HandlerFn)


@dataclass(frozen=True, slots=True)
class Event:
    """What a handler receives: the stored event, its body parsed in ``data`` (JSON, or a
    urlencoded form; see ``parse_data``)."""

    id: str
    source: str
    provider_event_id: str
    type: str
    data: Any
    body: bytes
    headers: dict[str, str]
    received_at: datetime


def parse_data(body: bytes, headers: Mapping[str, str] | None = None) -> Any:
    """``Event.data`` (and the admin API's ``payload``): the stored body as data, or None
    when it does not parse.

    The one place that decides it, from the stored ``content-type``: a urlencoded form is
    the parsed form (or, for a form that is only ``payload=<json>``, that JSON: GitHub's
    form content type, Slack interactivity); anything else is JSON. Providers read bodies
    by the same rule (``hookline.providers.body``), so handlers see what was verified.
    """
    try:
        return decode_body(body, headers or {})
    except VerificationError:
        return None


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    name: str
    fn: HandlerFn
    source: str
    type_pattern: str
    max_attempts: int | None = None
    concurrency_key: Callable[[Event], Any] | None = None
    step_timeout: float | None = None

    def matches(self, source: str, event_type: str) -> bool:
        return source == self.source and fnmatchcase(event_type, self.type_pattern)


def handler(
    source: str | None = None,
    type: str = "*",
    *,
    job: str | None = None,
    max_attempts: int | None = None,
    concurrency_key: Callable[[Event], Any] | None = None,
    step_timeout: float | None = None,
) -> Callable[[F], F]:
    """Mark an async function as the handler of ``(source, type glob)`` or of a ``job``."""
    if (source is None) == (job is None):
        raise PipelineError("@handler needs either a source (and type) or job=, not both")
    if max_attempts is not None and max_attempts < 1:
        raise PipelineError("max_attempts must be at least 1")

    def mark(fn: F) -> F:
        spec = HandlerSpec(
            name=f"{fn.__module__}:{fn.__qualname__}",
            fn=fn,
            source=JOB_SOURCE if job is not None else str(source),
            type_pattern=job if job is not None else type,
            max_attempts=max_attempts,
            concurrency_key=concurrency_key,
            step_timeout=step_timeout,
        )
        setattr(fn, _MARK, spec)
        return fn

    return mark


class Registry:
    """The handlers in force, looked up by name (workers) or by event (ingest)."""

    def __init__(self, specs: Sequence[HandlerSpec] = ()) -> None:
        self._by_name = {spec.name: spec for spec in specs}

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def specs(self) -> list[HandlerSpec]:
        return list(self._by_name.values())

    def get(self, name: str) -> HandlerSpec | None:
        return self._by_name.get(name)

    def matching(self, source: str, event_type: str) -> list[HandlerSpec]:
        return [s for s in self._by_name.values() if s.matches(source, event_type)]

    def has_job(self, name: str) -> bool:
        return any(s.source == JOB_SOURCE and s.type_pattern == name for s in self.specs)


def load_handlers(modules: Sequence[str]) -> Registry:
    """Import every handler module; an import error is a StartupError (exit 2)."""
    specs: list[HandlerSpec] = []
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise StartupError(
                f"pipeline.handlers: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        for value in vars(module).values():
            spec = getattr(value, _MARK, None)
            if isinstance(spec, HandlerSpec) and spec.fn.__module__ == module.__name__:
                specs.append(spec)
    return Registry(specs)


__all__ = [
    "JOB_SOURCE",
    "Context",
    "Event",
    "HandlerSpec",
    "NonRetryableError",
    "Registry",
    "handler",
    "load_handlers",
]
