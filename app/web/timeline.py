"""The run timeline of the dashboard's event page: each run with the attempts it made.

Steps are memoized per (event, handler, generation), so the runs of one
generation share their step records: a run resumed after a failure reuses the
steps that succeeded before. To show what each run did, an attempt is put under
the run of its handler that was current when the attempt started: from the run's
creation until the next run of that handler was created (a new run of a handler
is only made once the previous one has ended) — unless the attempt names its run,
as every attempt recorded by this version does. A succeeded step with no attempt
of its own in a run was *reused* there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hookline.store.base import ACTIVE_RUN_STATUSES, RunRecord, StepAttempt


@dataclass(frozen=True, slots=True)
class StepView:
    name: str
    # succeeded | failed: the outcome of this run's last attempt; reused: succeeded in an
    # earlier run; pending: still to run (active run); skipped: the run ended first
    status: str
    attempts: list[StepAttempt]
    result: Any


@dataclass(frozen=True, slots=True)
class RunView:
    run: RunRecord
    steps: list[StepView]
    latest: bool


def _made_by(attempt: StepAttempt, run: RunRecord, start: float, end: float) -> bool:
    """Attempts know their run; by time only for records that predate ``run_id``."""
    if attempt.run_id is not None:
        return attempt.run_id == run.id
    return start <= attempt.started_at < end


def _steps(run: RunRecord, start: float, end: float) -> list[StepView]:
    views: list[StepView] = []
    for step in run.steps:
        own = [a for a in step.attempts if _made_by(a, run, start, end)]
        earlier = [a for a in step.attempts if a not in own and a.started_at < start]
        if own:
            status = own[-1].outcome
        elif step.status == "succeeded" and earlier:
            status = "reused"
        elif earlier:
            status = "pending" if run.status in ACTIVE_RUN_STATUSES else "skipped"
        else:
            continue  # first ran in a later run of this handler
        result = step.result if status in ("succeeded", "reused") else None
        views.append(StepView(step.name, status, own, result))
    return views


def timeline(runs: Sequence[RunRecord]) -> list[RunView]:
    """The runs newest first, each with the step attempts it made."""
    ordered = sorted(runs, key=lambda r: (r.created_at, r.id))
    next_created: dict[str, float] = {}
    views: list[RunView] = []
    for run in reversed(ordered):
        end = next_created.get(run.handler, math.inf)
        next_created[run.handler] = run.created_at
        views.append(RunView(run, _steps(run, run.created_at, end), latest=not views))
    return views
