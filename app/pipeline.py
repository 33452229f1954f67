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
import inspect
import logging
import re
import sys
import types
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from pydantic import BaseModel

from hookline.context import Context
from hookline.errors import NonRetryableError, PipelineError, StartupError
from hookline.providers import VerificationError
from hookline.providers.body import decode_body
from hookline.store.base import JOB_SOURCE

log = logging.getLogger("hookline.pipeline")

_MARK = "__hookline_handlers__"
#: The registrations made while each module's body ran, for those it does not bind to a name
#: (made in a loop, or by a factory, wherever the factory is defined). Weakly: a module
#: imported anew is a new object, with new ones.
_MADE_IN: weakref.WeakKeyDictionary[types.ModuleType, list[HandlerSpec]] = (
    weakref.WeakKeyDictionary()
)
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # never a '/': see store/jobs.py

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
    """One registration of a handler function: for ``(source, type glob)`` or a job.

    ``name`` is its identity, stored on its runs (see ``identities``).
    """

    name: str
    fn: HandlerFn
    source: str
    type_pattern: str
    max_attempts: int | None = None
    concurrency_key: Callable[[Event], Any] | None = None
    step_timeout: float | None = None
    payload: type[BaseModel] | None = None  # a job's payload model, checked by the gateway

    def matches(self, source: str, event_type: str) -> bool:
        return source == self.source and fnmatchcase(event_type, self.type_pattern)

    def key_for(self, event: Event) -> str | None:
        """The run's ``concurrency_key`` for this event (None: no key function, or it gave
        None, or it raised: a key function never makes the sender's request fail)."""
        if self.concurrency_key is None:
            return None
        try:
            key = self.concurrency_key(event)
        except Exception:
            log.warning("concurrency_key failed", extra={"handler": self.name}, exc_info=True)
            return None
        return None if key is None else str(key)

    @property
    def job(self) -> str | None:
        """The job name, for a job handler."""
        return self.type_pattern if self.source == JOB_SOURCE else None

    @property
    def function(self) -> str:
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def describe(self) -> str:
        """Which function, for what: for error messages naming a registration."""
        target = f"job {self.type_pattern!r}" if self.job else f"{self.source}:{self.type_pattern}"
        return f"{self.function} for {target}"


def handler(
    source: str | None = None,
    type: str = "*",
    *,
    job: str | None = None,
    payload: type[BaseModel] | None = None,
    name: str | None = None,
    max_attempts: int | None = None,
    concurrency_key: Callable[[Event], Any] | None = None,
    step_timeout: float | None = None,
) -> Callable[[F], F]:
    """Register an async function as the handler of ``(source, type glob)`` or of a ``job``.

    Decorators stack: each registers the function once more, and each registration runs
    for its own events. ``name=`` sets the identity stored on the runs (see ``identities``).
    ``payload=`` (jobs only) is a pydantic model the gateway validates the posted JSON with.
    """
    if (source is None) == (job is None):
        raise PipelineError("@handler needs either a source (and type) or job=, not both")
    if max_attempts is not None and max_attempts < 1:
        raise PipelineError("max_attempts must be at least 1")
    if job == "openapi.json":  # GET /jobs/openapi.json is the gateway's own document
        raise PipelineError("job name 'openapi.json' is reserved: choose another name")
    if job is not None and not JOB_NAME.fullmatch(job):
        raise PipelineError(
            f"job name {job!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    if payload is not None and (
        job is None or not inspect.isclass(payload) or not issubclass(payload, BaseModel)
    ):
        raise PipelineError("payload= must be a pydantic model class, and needs job=")
    if name is not None and (not name.strip() or len(name) > 200):
        raise PipelineError("name= must be a non-empty string of at most 200 characters")

    def mark(fn: F) -> F:
        registration = HandlerSpec(
            name=name or "",  # "": decided by ``identities`` once every decorator ran
            fn=fn,
            source=JOB_SOURCE if job is not None else str(source),
            type_pattern=job if job is not None else type,
            max_attempts=max_attempts,
            concurrency_key=concurrency_key,
            step_timeout=step_timeout,
            payload=payload,
        )
        # a new tuple each time: a wrapper that copied the function's __dict__ must not
        # add its registrations to the function's own
        setattr(fn, _MARK, (*getattr(fn, _MARK, ()), registration))
        module = _importing_module()
        if module is not None:
            _MADE_IN.setdefault(module, []).append(registration)
        return fn

    return mark


def _importing_module() -> types.ModuleType | None:
    """The module whose body is running (the innermost one on the stack): the one whose
    import is making this registration, whether it decorates directly or calls a factory."""
    frame: types.FrameType | None = sys._getframe(2)  # the caller of the decorator
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            return sys.modules.get(frame.f_globals.get("__name__", ""))
        frame = frame.f_back
    return None


def identities(registrations: Sequence[HandlerSpec]) -> list[HandlerSpec]:
    """Give each registration its identity: ``name=`` if given, else ``module:qualname``,
    plus ``[source:type]`` when the function is registered more than once. A function
    registered once keeps the identity it always had, so its stored runs stay its own."""
    per_function = Counter(id(r.fn) for r in registrations)
    named = []
    for r in registrations:
        if not r.name:
            suffix = f"[{r.source}:{r.type_pattern}]" if per_function[id(r.fn)] > 1 else ""
            r = replace(r, name=r.function + suffix)
        named.append(r)
    return named


class Registry:
    """The handlers in force, looked up by name (workers) or by event (ingest).

    Two registrations with one identity, or two handlers of one job, are a
    ``StartupError`` naming both: never a silent drop.
    """

    def __init__(self, specs: Sequence[HandlerSpec] = ()) -> None:
        self._by_name: dict[str, HandlerSpec] = {}
        self._jobs: dict[str, HandlerSpec] = {}
        for spec in specs:
            seen = self._by_name.get(spec.name)
            if seen is not None:
                raise StartupError(
                    f"pipeline.handlers: two handlers have the identity {spec.name!r}: "
                    f"{seen.describe()} and {spec.describe()}; give one a distinct name="
                )
            self._by_name[spec.name] = spec
            if spec.job is not None:
                other = self._jobs.get(spec.job)
                if other is not None:
                    raise StartupError(
                        f"pipeline.handlers: job {spec.job!r} has two handlers: "
                        f"{other.describe()} and {spec.describe()}; a job has one"
                    )
                self._jobs[spec.job] = spec

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
        return name in self._jobs

    def job(self, name: str) -> HandlerSpec | None:
        """The handler of job ``name``."""
        return self._jobs.get(name)

    @property
    def jobs(self) -> list[HandlerSpec]:
        """Every job's handler, by job name."""
        return [self._jobs[name] for name in sorted(self._jobs)]


def load_handlers(modules: Sequence[str]) -> Registry:
    """Import every handler module; an import error or a clash is a StartupError (exit 2).

    A module's handlers are the decorated functions it binds, whether it defines them or
    imports them (a package whose ``__init__`` does ``from .billing import *``), and those
    its code registered without binding them (in a loop, a factory); each registration
    counts once, however many modules or names bind it."""
    registrations: list[HandlerSpec] = []
    seen: set[int] = set()
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise StartupError(
                f"pipeline.handlers: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        for value in vars(module).values():
            for r in getattr(value, _MARK, ()) if callable(value) else ():
                if isinstance(r, HandlerSpec) and id(r) not in seen:
                    seen.add(id(r))
                    registrations.append(r)
        for r in _MADE_IN.get(module, ()):
            if id(r) not in seen:
                seen.add(id(r))
                registrations.append(r)
    return Registry(identities(registrations))


__all__ = [
    "JOB_SOURCE",
    "Context",
    "Event",
    "HandlerSpec",
    "NonRetryableError",
    "Registry",
    "handler",
    "identities",
    "load_handlers",
]
