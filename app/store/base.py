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
        """New runs for an event (None: no such event)."""
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
