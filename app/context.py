"""``Context``: what a handler uses to run durable, memoized steps.

A step is keyed by (event, handler, generation, name). When a step already
succeeded for that key, ``ctx.step`` returns the stored JSON result without
calling the function again: after a retry, a crash, a worker restart or a
``resume`` redelivery. Each call of ``ctx.step`` takes the next position; a
replay that finds another name at a recorded position raises
``NonDeterminismError`` rather than returning a stale result.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import inspect
import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hookline.errors import NonDeterminismError, PipelineError
from hookline.redaction import Secrets
from hookline.store.base import StepOutcome, StepRecord, Store

T = TypeVar("T")
_current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hookline_step", default=None
)
MAX_ERROR_CHARS = 2_000
MAX_TRACEBACK_CHARS = 20_000


class _ThreadOutlivedCancel(asyncio.CancelledError):
    """A cancellation that waited for the step's thread; carries what the thread returned."""

    value: Any = None
    error: BaseException | None = None


class Suspend(BaseException):
    """Raised by ``ctx.sleep``: park the run until ``until`` without holding a worker.

    A BaseException so that a handler's ``except Exception`` cannot swallow it.
    """

    def __init__(self, until: float) -> None:
        super().__init__(until)
        self.until = until


@dataclass(slots=True)
class RunScope:
    """The identity of the run a Context belongs to."""

    run_id: str
    event_id: str
    handler: str
    generation: int
    attempt: int
    step_timeout: float | None = None
    memo: dict[str, StepRecord] = field(default_factory=dict)


Notifier = Callable[[dict[str, Any], str], Awaitable[None]]


class Context:
    def __init__(
        self,
        scope: RunScope,
        store: Store,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        *,
        secrets: Secrets | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self._scope = scope
        self._secrets = secrets if secrets is not None else Secrets()
        self._redact = redact
        self._store = store
        self._notifier = notifier
        self._clock = clock
        self._by_position = {step.position: step for step in scope.memo.values()}
        self._position = 0
        self._names: set[str] = set()
        self.logger = logging.LoggerAdapter(
            logging.getLogger("hookline.handler"),
            {"run_id": scope.run_id, "handler": scope.handler, "event": scope.event_id},
        )

    @property
    def run_id(self) -> str:
        return self._scope.run_id

    @property
    def secrets(self) -> Secrets:
        """The ``[secrets]`` values by name: ``ctx.secrets["resend_api_key"]``."""
        return self._secrets

    @property
    def attempt(self) -> int:
        """This run's attempt number, the first being 1."""
        return self._scope.attempt

    def idempotency_key(self, step: str) -> str:
        """Stable for (event, handler, step); a ``fresh`` redelivery gets new keys."""
        s = self._scope
        raw = f"{s.event_id}\x00{s.handler}\x00{step}\x00{s.generation or ''}"
        return "hl_" + hashlib.sha256(raw.encode()).hexdigest()[:40]

    def _claim_position(self, name: str) -> tuple[int, StepRecord | None]:
        if name in self._names:
            raise PipelineError(f"step name {name!r} used twice in one run")
        self._names.add(name)
        position = self._position
        self._position += 1
        recorded = self._by_position.get(position)
        if recorded is not None and recorded.name != name:
            raise NonDeterminismError(
                f"step {position} is {name!r} now but was recorded as {recorded.name!r}: "
                "a handler must call its steps in the same order on every attempt"
            )
        return position, self._scope.memo.get(name)

    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        step_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` once per key; return its JSON result (stored on success)."""
        position, recorded = self._claim_position(name)
        if recorded is not None and recorded.status == "succeeded":
            return recorded.result
        number = len(recorded.attempts) + 1 if recorded is not None else 1
        timeout = step_timeout if step_timeout is not None else self._scope.step_timeout
        started = self._clock()
        token = _current_step.set(name)
        try:
            value = await asyncio.wait_for(self._call(fn, args, kwargs), timeout)
            result_json = json.dumps(value)
        except _ThreadOutlivedCancel as late:
            # The run was cancelled while a thread ran the step; the thread finished, so its
            # side effect happened: record it, so that a resume does not repeat it.
            if late.error is None:
                with contextlib.suppress(TypeError, ValueError):
                    await self._record(
                        name, position, number, started, json.dumps(late.value), None
                    )
            raise
        except Exception as exc:
            await self._record(name, position, number, started, None, exc)
            raise
        finally:
            _current_step.reset(token)
        await self._record(name, position, number, started, result_json, None)
        return json.loads(result_json)

    @staticmethod
    async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args, **kwargs)
        # Sync work runs off the event loop. A thread cannot be stopped: when the run is
        # cancelled (operator cancel, lost lease, shutdown) we still wait for it, so the run
        # and its lease outlive the step's side effects and no other run can overlap them.
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        future = asyncio.get_running_loop().run_in_executor(None, call)
        try:
            value = await asyncio.shield(future)
        except asyncio.CancelledError:
            late = _ThreadOutlivedCancel()
            try:
                late.value = await future
            except Exception as exc:
                late.error = exc
            raise late from None
        if inspect.isawaitable(value):
            value = await value
        return value

    async def _record(
        self,
        name: str,
        position: int,
        number: int,
        started: float,
        result_json: str | None,
        exc: BaseException | None,
    ) -> None:
        s = self._scope
        error = tb = None
        if exc is not None:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_CHARS:]
            if self._redact is not None:  # no configured secret is ever stored
                error, tb = self._redact(error), self._redact(tb)
        await self._store.record_step(
            StepOutcome(
                run_id=s.run_id,
                event_id=s.event_id,
                handler=s.handler,
                generation=s.generation,
                name=name,
                position=position,
                number=number,
                started_at=started,
                ended_at=self._clock(),
                succeeded=exc is None,
                result_json=result_json,
                error=error,
                traceback=tb,
            )
        )

    async def gather(self, *steps: Coroutine[Any, Any, Any]) -> list[Any]:
        """Run steps concurrently, each memoized; results in argument order.

        Every step is awaited to its end (none is left running); then the first
        failure in argument order is raised.
        """
        tasks = [asyncio.ensure_future(s) for s in steps]  # started in order: positions stable
        if not tasks:
            return []
        await asyncio.wait(tasks)
        for task in tasks:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]

    async def sleep(self, name: str, seconds: float) -> None:
        """A durable sleep: the run is parked and resumed later by any worker."""
        position, recorded = self._claim_position(name)
        if recorded is not None and recorded.status == "succeeded":
            until = float(recorded.result["until"])
        else:
            until = self._clock() + seconds
            await self._record(name, position, 1, self._clock(), json.dumps({"until": until}), None)
        if self._clock() < until:
            raise Suspend(until)

    @property
    def notify_enabled(self) -> bool:
        """Whether ``[pipeline] notify_url`` and ``notify_secret`` are configured."""
        return self._notifier is not None

    async def notify(self, payload: dict[str, Any]) -> None:
        """POST ``payload`` to ``[pipeline] notify_url``, signed per Standard Webhooks.

        Call it inside a step (``ctx.step("notify-app", ctx.notify, {...})``) so it is
        retried and never repeated once it succeeded; the webhook-id is that step's
        idempotency key, so the receiver can dedupe too.
        """
        if self._notifier is None:
            raise PipelineError("ctx.notify needs [pipeline] notify_url and notify_secret")
        message_id = self.idempotency_key(_current_step.get() or "notify")
        await self._notifier(payload, message_id)
