"""The storage interface: records passed in and out, and the ``Store`` protocol.

Everything outside ``hookline.store`` talks to storage through ``Store``; the SQL of
each dialect stays in ``app/sql/<dialect>/``. Times are Unix seconds (float).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RunStatus = Literal["queued", "running", "retrying", "succeeded", "failed", "cancelled"]
EventStatus = Literal[
    "queued", "running", "retrying", "succeeded", "failed", "cancelled", "unhandled"
]
RedeliveryMode = Literal["resume", "fresh"]
#: what ``Store.enqueue_job`` did: stored a new job; found the job of this idempotency key
#: (same payload) and left it alone; found it failed and resumed it; or found the key used
#: with another payload (nothing changed)
EnqueueOutcome = Literal["created", "replayed", "resumed", "key_reused"]
JOB_SOURCE = "jobs"  # the reserved source of every job's event
#: what became of a schedule's tick: a job was enqueued on time; none, because the
#: schedule's previous job was still active (overlap = "skip"); none, because nothing ran
#: at the time; a job enqueued late, after a downtime (catch_up = "latest" | "all")
TickOutcome = Literal["fired", "skipped_overlap", "missed", "caught_up"]
TICK_OUTCOMES: tuple[str, ...] = ("fired", "skipped_overlap", "missed", "caught_up")

RUN_STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "cancelled",
)
EVENT_STATUSES: tuple[str, ...] = (*RUN_STATUSES, "unhandled")
ACTIVE_RUN_STATUSES: tuple[str, ...] = ("queued", "running", "retrying")


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    handler: str
    max_attempts: int
    concurrency_key: str | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: str
    source: str
    provider_event_id: str
    type: str
    received_at: float
    headers: dict[str, str]
    body: bytes
    runs: Sequence[NewRun] = ()


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to store: an event of source ``jobs`` with its runs, in one transaction.

    ``idempotency_key`` is per job ``name``: a second job with the same name and key is not
    stored; instead the first is replayed (same ``fingerprint``), resumed (same fingerprint,
    and every latest run of it ``failed``) or refused (another fingerprint).
    """

    id: str  # the job id, which is also its event id
    name: str  # the job name: the event's type
    payload: bytes  # the JSON as posted: the event's body (``Event.data`` parses it)
    created_at: float
    run_at: float  # its runs are not claimed before this time
    runs: Sequence[NewRun]
    idempotency_key: str | None = None
    fingerprint: str | None = None  # of the canonical payload (see ``hookline.jobs``)
    headers: dict[str, str] = field(default_factory=dict)  # stored like a webhook's, redacted


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job_id: str  # the new job, or the one that already holds the key
    outcome: EnqueueOutcome
    status: EventStatus  # the job's status after the call
    run_ids: tuple[str, ...] = ()  # the runs this call created


@dataclass(frozen=True, slots=True)
class NewTick:
    """One tick of a schedule to record, with the job to enqueue for it (none: ``missed``).

    With ``skip_if_active`` (overlap = "skip") the tick is recorded ``skipped_overlap``
    instead, and nothing enqueued, while the schedule's last job is still active.
    """

    tick_at: int  # Unix seconds (ticks are whole seconds)
    outcome: Literal["fired", "caught_up", "missed"]
    job: NewJob | None = None
    skip_if_active: bool = False


@dataclass(frozen=True, slots=True)
class TickResult:
    tick_at: int
    #: as recorded; "taken": another process recorded this tick first (nothing done);
    #: "paused": the schedule is paused (nothing recorded)
    outcome: TickOutcome | Literal["taken", "paused"]
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class TickRecord:
    tick_at: int
    outcome: TickOutcome
    job_id: str | None
    recorded_at: float


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the store knows of a schedule (a schedule never recorded: all defaults)."""

    name: str
    paused: bool = False
    resumed_at: float | None = None  # when it was last resumed (catch-up starts after it)
    last_job_id: str | None = None  # the newest job it enqueued (a tick or a trigger)
    last_ticks: list[TickRecord] = field(default_factory=list)  # newest first

    @property
    def last_tick_at(self) -> int | None:
        return self.last_ticks[0].tick_at if self.last_ticks else None


@dataclass(frozen=True, slots=True)
class IngestResult:
    id: str
    duplicate: bool
    resumed_run_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSummary:
    id: str
    source: str
    provider_event_id: str
    type: str
    status: str
    received_at: float
    seq: int


@dataclass(frozen=True, slots=True)
class StepAttempt:
    number: int
    started_at: float
    ended_at: float | None
    outcome: str
    error: str | None
    traceback: str | None
    run_id: str | None = None  # the run whose attempt this was


@dataclass(frozen=True, slots=True)
class StepRecord:
    name: str
    position: int
    status: str
    result: Any
    attempts: list[StepAttempt] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    event_id: str
    handler: str
    generation: int
    status: str
    attempts: int
    max_attempts: int
    available_at: float
    created_at: float
    updated_at: float
    result: Any = None
    error: str | None = None
    concurrency_key: str | None = None
    steps: list[StepRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventRecord:
    summary: EventSummary
    headers: dict[str, str]
    body: bytes
    runs: list[RunRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job: its event's summary, what the request asked for, and its runs (no steps)."""

    summary: EventSummary  # summary.type is the job name
    run_at: float
    idempotency_key: str | None
    runs: list[RunRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventFilter:
    source: str | None = None
    type_glob: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run leased to one worker, with what the worker needs to execute it."""

    run: RunRecord
    event: EventSummary
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """One attempt of one step, written when the step ends."""

    run_id: str
    event_id: str
    handler: str
    generation: int
    name: str
    position: int
    number: int
    started_at: float
    ended_at: float
    succeeded: bool
    result_json: str | None
    error: str | None
    traceback: str | None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a worker leaves a run: done, to retry at ``available_at``, or released."""

    run_id: str
    status: RunStatus
    available_at: float = 0.0
    result_json: str | None = None
    error: str | None = None
    # a released run goes back to the queue without spending an attempt
    refund_attempt: bool = False


@dataclass(frozen=True, slots=True)
class StepTiming:
    outcome: str
    seconds: float


class Store(Protocol):
    """What hookline needs from a database. Implemented for SQLite and PostgreSQL."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        ...

    async def check_ready(self) -> None:
        """Raise if the store is unreachable or its schema is not current."""
        ...

    # ingestion
    async def ingest(self, event: NewEvent, resume_failed: bool) -> IngestResult: ...

    # jobs
    async def enqueue_job(self, job: NewJob) -> EnqueueResult:
        """Store a job with its runs, durably; or replay, resume or refuse per its key."""
        ...

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job with this id (None: no job; an event of another source is no job)."""
        ...

    # schedules
    async def now(self) -> float:
        """The store's clock (Unix seconds): PostgreSQL's, so every process sharing the
        database agrees on which ticks are due; SQLite's is this machine's."""
        ...

    async def record_ticks(
        self, schedule: str, ticks: Sequence[NewTick], now: float
    ) -> list[TickResult]:
        """Record ticks (in order) and enqueue their jobs, in one transaction. A tick some
        process recorded already is left alone ("taken"): exactly one job per tick."""
        ...

    async def trigger_schedule(self, schedule: str, job: NewJob) -> EnqueueResult:
        """Enqueue a schedule's job now (paused or not), as its newest job."""
        ...

    async def set_schedule_paused(self, schedule: str, paused: bool, now: float) -> None: ...

    async def schedule_state(self, schedule: str, ticks: int = 10) -> ScheduleState:
        """The schedule's stored state and its newest ``ticks`` tick records."""
        ...

    # reading
    async def list_events(
        self, flt: EventFilter, limit: int, before_seq: int | None
    ) -> list[EventSummary]: ...

    async def get_event(self, event_id: str) -> EventRecord | None: ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    # pipeline
    async def claim_runs(
        self, worker_id: str, limit: int, lease_seconds: float, now: float
    ) -> list[ClaimedRun]: ...

    async def has_due_runs(self, now: float) -> bool: ...

    async def heartbeat(
        self, worker_id: str, run_ids: Sequence[str], lease_seconds: float, now: float
    ) -> list[str]:
        """Extend the leases; return the ids this worker no longer holds (cancelled, reclaimed)."""
        ...

    async def load_steps(
        self, event_id: str, handler: str, generation: int, attempts: bool = False
    ) -> list[StepRecord]: ...

    async def record_step(self, outcome: StepOutcome) -> None: ...

    async def finish_run(self, worker_id: str, outcome: RunOutcome, now: float) -> bool:
        """Write a run's outcome if this worker still holds its lease; False otherwise."""
        ...

    async def redeliver(self, event_id: str, mode: RedeliveryMode, now: float) -> list[str] | None:
        """New runs for an event (None: no such event). ``resume``: a handler whose newest
        run is still active keeps it (its id is returned, nothing is added). ``fresh``:
        raises ``RedeliveryInProgress`` (creating nothing) while any run is active."""
        ...

    async def redeliver_matching(
        self, flt: EventFilter, mode: RedeliveryMode, now: float
    ) -> int: ...

    async def cancel_run(self, run_id: str, now: float) -> RunRecord | None: ...

    async def prune(self, older_than: float, include_failed: bool) -> int: ...

    async def queue_depth(self) -> int: ...

    async def run_counts(self) -> dict[str, int]: ...

    async def step_durations(
        self, after_id: int | None, limit: int
    ) -> tuple[list[StepTiming], int]:
        """Step attempts that ended after attempt ``after_id`` (None: start from the newest,
        returning none), and the id to pass next time. Feeds the step duration histogram."""
        ...

    async def worker_heartbeat(
        self, worker_id: str, host: str, pid: int, started_at: float, now: float
    ) -> None: ...

    async def worker_stopped(self, worker_id: str) -> None: ...

    async def live_workers(self, within_seconds: float = 30.0) -> int: ...
