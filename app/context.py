"""``Context``: what a handler uses to run durable, memoized steps.

A step is keyed by (event, handler, generation, name). When a step already
succeeded for that key, ``ctx.step`` returns the stored JSON result without
calling the function again: after a retry, a crash, a worker restart or a
``resume`` redelivery. Each call of ``ctx.step`` takes the next position; a
replay that finds another name at a recorded position raises
``NonDeterminismError`` rather than returning a stale result.

Every write is made under the run's claim (``Lease``): the store refuses it once the claim
is over, and so does the context before it starts a step — a worker that lost its lease
(reclaimed after a pause, or not renewed in time) raises ``LeaseLost`` and never runs the
next step.
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
import math
import numbers
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hookline.errors import NonDeterminismError, NonRetryableError, PipelineError, StoreError
from hookline.redaction import Secrets, redacted_cut
from hookline.step_threads import StepThreads
from hookline.store.base import Claim, StepOutcome, StepRecord, Store

T = TypeVar("T")
_current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hookline_step", default=None
)
MAX_ERROR_CHARS = 2_000
MAX_TRACEBACK_CHARS = 20_000
MAX_WRITE_TRIES = 30  # with backoff up to 2 s: about a minute, never past the lease
log = logging.getLogger("hookline.context")
_HANDLER_LOG = logging.getLogger("hookline.handler")


class LeaseLost(BaseException):
    """The run's claim is over: the store refused a write, or the worker could not renew
    the lease in time. The run is given up at once; another worker owns it now (or will).

    A BaseException so that a handler's ``except Exception`` cannot swallow it.
    """


class StepResultError(PipelineError):
    """A step returned something that is not JSON: a programming error. The run fails at
    once instead of calling the step (and repeating its side effect) again."""


async def while_held(lease: Lease, write: Callable[[], Awaitable[T]], what: str) -> T:
    """``write()``, retried after a store error (bounded, with backoff) for as long as the
    claim may still be held: a blip of the store must not lose (or repeat) finished work.
    The writes retried this way are idempotent under one claim."""
    backoff = 0.05
    for tries in range(1, MAX_WRITE_TRIES + 1):
        try:
            return await write()
        except StoreError as exc:
            left = lease.deadline - time.monotonic()
            if lease.lost or left <= 0 or tries == MAX_WRITE_TRIES:
                raise
            log.warning(
                f"writing {what} failed; retrying",
                extra={"run_id": lease.claim.run_id, "error": str(exc), "try": tries},
            )
            await asyncio.sleep(min(backoff, left))
            backoff = min(backoff * 2, 2.0)
    raise AssertionError("unreachable")


@dataclass(slots=True)
class Lease:
    """What a worker knows of one claim: the claim (its fencing token), and the moment
    (``time.monotonic()``) after which it must assume the claim may be over."""

    claim: Claim
    deadline: float
    lost: bool = False
    # Its outcome is being (or has been) written: the store may have let go of the claim
    # already, which is then no sign of a lost lease.
    ending: bool = False
    # The worker is cancelling the run's task (shutdown, operator cancel, lost lease): set
    # before ``task.cancel()``, so a CancelledError can be told from a step's own.
    cancelling: bool = False

    def check(self) -> None:
        if not self.lost and time.monotonic() > self.deadline:
            self.lost = True
        if self.lost:
            raise LeaseLost(f"the claim of run {self.claim.run_id} is over")


#: The longest durable sleep: ten years, so that a wake time is a date every view can show.
MAX_SLEEP_SECONDS = 10 * 366 * 24 * 3600


class StepExited(Exception):
    """A step raised ``SystemExit`` or ``KeyboardInterrupt`` (a library's ``sys.exit()``):
    recorded as the step's failure, then raised as this ordinary exception, since asyncio
    re-raises those two out of the event loop from any task (and the worker would end)."""


def run_cancelled(lease: Lease | None) -> bool:
    """Whether the worker is cancelling this run (a shutdown, an operator's cancel, a lost
    lease). A ``CancelledError`` otherwise came from an awaited task that something else
    cancelled: the handler's own failure. (``Task.cancelling()`` cannot tell: it stays
    raised after a ``TaskGroup`` in the handler failed.)"""
    return lease is None or lease.cancelling


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
    lease: Lease | None = None  # None only where nothing is written (tests of keys)


Notifier = Callable[[dict[str, Any], str], Awaitable[None]]


class Context:
    def __init__(
        self,
        scope: RunScope,
        store: Store,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        observe_step: Callable[[str, float], None] | None = None,
        *,
        secrets: Secrets | None = None,
        redact: Callable[[str], str] | None = None,
        threads: StepThreads | None = None,
    ) -> None:
        self._scope = scope
        self._threads = threads  # where sync steps run (None: the loop's default executor)
        self._secrets = secrets if secrets is not None else Secrets()
        self._redact = redact
        self._store = store
        self._notifier = notifier
        self._clock = clock  # the store's clock, as estimated by the worker (see Runner)
        self._observe_step = observe_step
        self._by_position = {step.position: step for step in scope.memo.values()}
        self._position = 0
        self._names: set[str] = set()

    @functools.cached_property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """The handler's logger: its lines carry the run, handler and event (made on first
        use: most runs never log)."""
        s = self._scope
        return logging.LoggerAdapter(
            _HANDLER_LOG, {"run_id": s.run_id, "handler": s.handler, "event": s.event_id}
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
        /,
        *args: Any,
        step_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` once per key; return its JSON result (stored on success).

        ``name`` and ``fn`` are positional only, so ``fn`` may take keywords of those names.

        ``step_timeout`` bounds an async step; a sync step runs in a thread that nothing can
        stop, so when it ends late its result is kept (its side effect happened).
        """
        position, recorded = self._claim_position(name)
        if recorded is not None and recorded.status == "succeeded":
            return recorded.result
        self._lease().check()  # never start a step once the claim may be over
        number = len(recorded.attempts) + 1 if recorded is not None else 1
        timeout = step_timeout if step_timeout is not None else self._scope.step_timeout
        started = self._clock()
        begun = time.monotonic()
        token = _current_step.set(name)
        try:
            if inspect.iscoroutinefunction(fn):
                call = fn(*args, **kwargs)
                value = await (call if timeout is None else asyncio.wait_for(call, timeout))
            else:
                value = await self._call_sync(fn, args, kwargs)
                if timeout is not None and time.monotonic() - begun > timeout:
                    log.warning(
                        "sync step outlived its step_timeout; its result is kept",
                        extra={"run_id": self._scope.run_id, "step": name, "timeout": timeout},
                    )
            result_json = _to_json(name, value)
        except _ThreadOutlivedCancel as late:
            # The run was cancelled while a thread ran the step; the thread finished, so its
            # side effect happened: record it (if the claim is still held), so that a resume
            # does not repeat it.
            if late.error is None:
                with contextlib.suppress(StepResultError):
                    await self._record(
                        name, position, number, started, _to_json(name, late.value), None
                    )
            raise
        except (Exception, SystemExit, KeyboardInterrupt, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and run_cancelled(self._scope.lease):
                raise  # the run itself is cancelled: not the step's failure
            # an exit or a CancelledError nobody asked for (awaiting a task someone else
            # cancelled) is the step's failure, recorded and retried like any other
            if not await self._record(name, position, number, started, None, exc):
                raise self._lost() from exc
            if isinstance(exc, SystemExit | KeyboardInterrupt):
                raise StepExited(f"step {name!r} raised {type(exc).__name__}: {exc}") from exc
            raise
        finally:
            _current_step.reset(token)
        if not await self._record(name, position, number, started, result_json, None):
            raise self._lost()
        return json.loads(result_json)

    def _lease(self) -> Lease:
        if self._scope.lease is None:
            raise PipelineError("this context has no claim to write under")
        return self._scope.lease

    def _lost(self) -> LeaseLost:
        lease = self._lease()
        lease.lost = True
        return LeaseLost(f"the store refused a write of run {self._scope.run_id}: claim over")

    async def _call_sync(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # Sync work runs off the event loop: in the worker's step threads, else the loop's
        # default executor. A thread cannot be stopped: when the run is cancelled (operator
        # cancel, lost lease, shutdown) we still wait for it, so the run and its lease
        # outlive the step's side effects and no other run can overlap them.
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        future: asyncio.Future[Any] = (
            asyncio.get_running_loop().run_in_executor(None, call)
            if self._threads is None
            else self._threads.submit(call)
        )
        try:
            value = await asyncio.shield(future)
        except asyncio.CancelledError:
            late = _ThreadOutlivedCancel()
            while not future.done():  # a second cancel must not make us stop waiting
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({future})
            if future.exception() is not None:
                late.error = future.exception()
            else:
                late.value = future.result()
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
    ) -> bool:
        """Write the attempt under the run's claim; False if the store refused it."""
        s = self._scope
        error = tb = None
        if exc is not None:
            # no configured secret is ever stored, not even a piece cut off by a limit
            error = redacted_cut(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS, self._redact)
            tb = "".join(traceback.format_exception(exc))
            tb = redacted_cut(tb, MAX_TRACEBACK_CHARS, self._redact, keep_end=True)
        ended = self._clock()
        lease = self._lease()
        outcome = StepOutcome(
            run_id=s.run_id,
            event_id=s.event_id,
            handler=s.handler,
            generation=s.generation,
            name=name,
            position=position,
            number=number,
            started_at=started,
            ended_at=ended,
            succeeded=exc is None,
            result_json=result_json,
            error=error,
            traceback=tb,
        )
        written = await while_held(
            lease, lambda: self._store.record_step(lease.claim, outcome), "a step"
        )
        if written and self._observe_step is not None:
            self._observe_step("succeeded" if exc is None else "failed", max(0.0, ended - started))
        return written

    async def gather(self, *steps: Coroutine[Any, Any, Any]) -> list[Any]:
        """Run steps concurrently, each memoized; results in argument order.

        Structured: the steps are tasks of one ``TaskGroup``, so none outlives the call.
        Every step is awaited to its end (a failure does not abandon a sibling that may
        still succeed and be memoized), then a failure is raised: a lost claim first, then
        one that fails the run at once (``NonRetryableError``, a ``PipelineError`` such as a
        result that is no JSON), else the first in argument order.
        If the run is cancelled, every step is cancelled and awaited — a sync step's
        thread to its end, its result recorded — before the cancellation goes on.
        """
        if not steps:
            return []

        async def settle(step: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
            try:
                return True, await step
            except asyncio.CancelledError as exc:
                if run_cancelled(self._scope.lease):
                    raise
                return False, exc  # a step's own CancelledError is its failure
            except BaseException as exc:  # Suspend, LeaseLost too: raised after the others
                return False, exc

        async with asyncio.TaskGroup() as group:  # started in order: positions are stable
            tasks = [group.create_task(settle(s)) for s in steps]
        outcomes = [task.result() for task in tasks]
        failures = [value for ok, value in outcomes if not ok]
        if failures:  # what ends the run at once wins, whatever its argument's place
            raise min(failures, key=_gather_rank)
        return [value for _ok, value in outcomes]

    async def sleep(self, name: str, seconds: float) -> None:
        """A durable sleep: the run is parked and resumed later by any worker.

        ``seconds`` up to ``MAX_SLEEP_SECONDS`` (a negative one does not wait: a deadline
        already past); anything else is a misuse that fails the run (an infinite or NaN
        sleep would park it forever, or never)."""
        position, recorded = self._claim_position(name)
        if recorded is not None and recorded.status == "succeeded":
            until = float(recorded.result["until"])
        else:
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, numbers.Real)
                or not -math.inf < float(seconds) <= MAX_SLEEP_SECONDS  # False for NaN too
            ):
                raise PipelineError(
                    f"ctx.sleep({name!r}, {seconds!r}): seconds must be a number up to "
                    f"{MAX_SLEEP_SECONDS} (ten years)"
                )
            seconds = max(0.0, float(seconds))  # a deadline already past: no wait
            self._lease().check()
            until = self._clock() + seconds
            wake = json.dumps({"until": until})
            if not await self._record(name, position, 1, self._clock(), wake, None):
                raise self._lost()
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


def _gather_rank(failure: BaseException) -> int:
    """Which of ``ctx.gather``'s failures to raise (lowest; ``min`` keeps argument order)."""
    if isinstance(failure, LeaseLost):
        return 0
    if isinstance(failure, NonRetryableError | PipelineError):
        return 1  # a retry would call a step whose side effect happened, or fail again
    return 2


def _to_json(name: str, value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)  # NaN is no JSON: shown as null elsewhere
    except (TypeError, ValueError) as exc:
        raise StepResultError(
            f"step {name!r} returned a result that is not JSON ({type(exc).__name__}: {exc}); "
            "a step's result must be JSON-serialisable. The run fails rather than call the "
            "step again: its side effect has happened."
        ) from None
