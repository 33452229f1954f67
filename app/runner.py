"""Executes one claimed run: the handler with its memo, then the run's outcome.

The runner never renews the lease; the worker does. It turns every way a
handler can end into a ``RunOutcome``: succeeded, retrying (with backoff),
failed (attempts spent, ``NonRetryableError``, non-determinism, a step result
that is not JSON), or parked by a durable sleep — or into ``None`` when the claim
is over (``LeaseLost``): nothing may be written then.

The handler's clock is the store's, estimated from the time of the claim
(``ClaimedRun.claimed_at``) plus the time elapsed since on this machine's
monotonic clock: a durable sleep's wake time and step times are in the store's
frame even when this machine's clock is wrong.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from hookline.config import PipelineConfig
from hookline.context import Context, Lease, LeaseLost, Notifier, RunScope, Suspend, run_cancelled
from hookline.errors import NonRetryableError, PipelineError
from hookline.pipeline import Event, Registry, parse_data
from hookline.redaction import Secrets, redacted_cut
from hookline.retry import backoff_delay
from hookline.step_threads import StepThreads
from hookline.store.base import ClaimedRun, RunOutcome, Store

log = logging.getLogger("hookline.runner")
MAX_RUN_ERROR_CHARS = 20_000


def _error_text(exc: BaseException, with_traceback: bool) -> str:
    """The run's error; cut to ``MAX_RUN_ERROR_CHARS`` when redacted (``Runner.execute``)."""
    text = f"{type(exc).__name__}: {exc}"
    if with_traceback:
        text += "\n\n" + "".join(traceback.format_exception(exc))
    return text


class Runner:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        config: PipelineConfig,
        notifier: Notifier | None = None,
        clock: Callable[[], float] | None = None,
        observe_step: Callable[[str, float], None] | None = None,
        *,
        secrets: Secrets | None = None,
        redact: Callable[[str], str] | None = None,
        step_threads: StepThreads | None = None,
    ) -> None:
        self._store = store
        self._step_threads = step_threads
        self._registry = registry
        self._config = config
        self._notifier = notifier
        self._fixed_clock = clock  # tests; else the store's clock, estimated per claim
        self._observe_step = observe_step
        self._secrets = secrets
        self._redact = redact

    def _clock_of(self, claimed: ClaimedRun) -> Callable[[], float]:
        if self._fixed_clock is not None:
            return self._fixed_clock
        claimed_at, start = claimed.claimed_at, time.monotonic()
        return lambda: claimed_at + (time.monotonic() - start)

    async def execute(self, claimed: ClaimedRun, lease: Lease) -> RunOutcome | None:
        """The run's outcome, or None if its claim ended meanwhile (write nothing)."""
        try:
            outcome = await self._execute(claimed, lease)
        except LeaseLost:
            lease.lost = True
            return None
        if outcome.error is not None:  # never store a secret, nor a piece of one
            error = redacted_cut(outcome.error, MAX_RUN_ERROR_CHARS, self._redact, keep_end=True)
            return replace(outcome, error=error)
        return outcome

    async def _execute(self, claimed: ClaimedRun, lease: Lease) -> RunOutcome:
        run, summary = claimed.run, claimed.event
        clock = self._clock_of(claimed)
        spec = self._registry.get(run.handler)
        if spec is None:  # claims take only loaded handlers: hand it back untouched
            return RunOutcome(run.id, "queued", refund_attempt=True)
        # A first attempt whose claim found the memo empty does not read it (one round trip
        # less). Any later attempt reads it: the claim that took the run from a lapsed holder
        # may not have seen that holder's last step record (see ``ClaimedRun.has_memo``).
        skip_memo = not claimed.has_memo and run.attempts <= 1
        steps = (
            []
            if skip_memo
            else await self._store.load_steps(
                run.event_id, run.handler, run.generation, attempts=True
            )
        )
        scope = RunScope(
            run_id=run.id,
            event_id=run.event_id,
            handler=run.handler,
            generation=run.generation,
            attempt=run.attempts,
            step_timeout=spec.step_timeout,
            memo={s.name: s for s in steps},
            lease=lease,
        )
        ctx = Context(
            scope,
            self._store,
            self._notifier,
            clock,
            self._observe_step,
            secrets=self._secrets,
            redact=self._redact,
            threads=self._step_threads,
        )
        if run.attempts > run.max_attempts:  # reclaimed after crashes until the budget ran out
            # this claim calls nothing, so it is no attempt: the run shows max_attempts
            return RunOutcome(
                run.id,
                "failed",
                error=f"the last of {run.max_attempts} attempt(s) ended without an outcome "
                "(its worker crashed or stalled)",
                refund_attempt=True,
            )
        data = parse_data(claimed.body, claimed.headers)
        event = Event(
            id=summary.id,
            source=summary.source,
            provider_event_id=summary.provider_event_id,
            type=summary.type,
            data=data,
            body=claimed.body,
            headers=claimed.headers,
            received_at=datetime.fromtimestamp(summary.received_at, UTC),
        )
        try:
            call = spec.fn(event, ctx)
            if not inspect.isawaitable(call):  # a plain def: it ran once, never again
                raise PipelineError(
                    f"handler {run.handler} returned {type(call).__name__}, not an awaitable: "
                    "define it with async def"
                )
            result = await call
        except Suspend as parked:
            # a durable sleep is not a failed attempt: give the attempt back
            delay = max(0.0, parked.until - clock())
            return RunOutcome(run.id, "queued", delay=delay, refund_attempt=True)
        except (NonRetryableError, PipelineError) as exc:
            return RunOutcome(run.id, "failed", error=_error_text(exc, with_traceback=True))
        except asyncio.CancelledError as exc:
            if run_cancelled(lease):
                raise  # shutdown, operator cancel or lost lease: the worker hands the run back
            return self._failed_attempt(claimed, exc)  # the handler's own, retried as such
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            # sys.exit() in a library is a failed attempt too, never the worker's end
            return self._failed_attempt(claimed, exc)
        try:
            result_json = json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return RunOutcome(run.id, "failed", error=f"handler result is not JSON: {exc}")
        return RunOutcome(run.id, "succeeded", result_json=result_json)

    def _failed_attempt(self, claimed: ClaimedRun, exc: BaseException) -> RunOutcome:
        run = claimed.run
        error = _error_text(exc, with_traceback=True)
        if run.attempts >= run.max_attempts:
            return RunOutcome(run.id, "failed", error=error)
        c = self._config
        delay = backoff_delay(
            run.attempts, c.backoff_base_seconds, c.backoff_max_seconds, c.backoff_jitter
        )
        return RunOutcome(run.id, "retrying", delay=delay, error=error)
