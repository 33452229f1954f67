"""The storage interface: records passed in and out, and the ``Store`` protocol.

Everything outside ``hookline.store`` talks to storage through ``Store``; the SQL of
each dialect stays in ``app/sql/<dialect>/``. Times are Unix seconds (float).

**The store owns the clock.** Every decision that compares times — is a run due, has a
lease expired, when does a retry become due — is made with the store's clock: the
database server's on PostgreSQL (many machines, one clock), the local machine's on
SQLite (one machine). Callers never pass "now" for such decisions; a run that must wait
gives a delay (``RunOutcome.delay``), and a caller that needs an absolute time in the
store's frame asks ``Store.now()`` (or uses ``ClaimedRun.claimed_at``).

**Claims are fenced.** Each claim of a run increments the run's ``fence``; every write
made under a claim (``record_step``, ``finish_run``, ``heartbeat``) presents it as a
``Claim`` and is refused once that claim is over: the run was reclaimed after its lease
expired, finished, or cancelled and let go.
"""

from __future__ import annotations

import json
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
    # Set for sources whose id the signature does not cover (hookline.ingest): the body's
    # SHA-256 (hex), and since when the same body under another id is a replay.
    body_sha256: str | None = None
    replay_since: float | None = None


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
    instead, and nothing enqueued, while the schedule's last job is still active (one this
    pass enqueued for an earlier tick included).
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
    # a replay: the provider event id of the event whose body this was (``id`` is its id)
    replay_of: str | None = None


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
class Claim:
    """The claim a write is made under: which run, which worker, which claim of the run."""

    run_id: str
    worker_id: str
    token: int  # the run's fence when it was claimed; a later claim has a larger one


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run leased to one worker, with what the worker needs to execute it."""

    run: RunRecord
    event: EventSummary
    headers: dict[str, str]
    body: bytes
    token: int = 0  # the fencing token of this claim (see ``Claim``)
    claimed_at: float = 0.0  # the store's clock when the claim was made
    # Whether (event, handler, generation) had any step recorded when the claim was made
    # (as the claim's statement saw the database). The runner trusts a False only on the
    # run's first attempt (``Runner``): a reclaimed run's previous holder may have committed
    # a step just after that statement began, and a new run of a memo key is made only
    # once every earlier run of the key has finished (fenced: no late write of theirs lands).
    has_memo: bool = True

    def claim(self, worker_id: str) -> Claim:
        return Claim(self.run.id, worker_id, self.token)


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
    """How a worker leaves a run: done, to retry ``delay`` seconds later, or released."""

    run_id: str
    status: RunStatus
    delay: float = 0.0  # queued/retrying: due this long after the store's now
    result_json: str | None = None
    error: str | None = None
    # a released run goes back to the queue without spending an attempt
    refund_attempt: bool = False


@dataclass(slots=True)
class WorkerStats:
    """A worker process's own counters, written with its heartbeat: ``/metrics`` of any
    ``serve`` process adds up those of every worker that ever ran (no table scans)."""

    runs: dict[str, int] = field(default_factory=dict)  # finished runs by outcome
    steps: dict[str, list[float]] = field(default_factory=dict)  # outcome → bucket counts + sum

    def to_json(self) -> str:
        return json.dumps({"runs": self.runs, "steps": self.steps}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> WorkerStats:
        data = json.loads(text) if text else {}
        return cls(dict(data.get("runs", {})), dict(data.get("steps", {})))

    def add(self, other: WorkerStats) -> None:
        for outcome, n in other.runs.items():
            self.runs[outcome] = self.runs.get(outcome, 0) + n
        for outcome, values in other.steps.items():
            mine = self.steps.setdefault(outcome, [0.0] * len(values))
            if len(mine) == len(values):  # same buckets (one hookline version)
                self.steps[outcome] = [a + b for a, b in zip(mine, values, strict=True)]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    started_at: float


class Store(Protocol):
    """What hookline needs from a database. Implemented for SQLite and PostgreSQL."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        ...

    async def check_ready(self) -> None:
        """Raise if the store is unreachable, cannot write (a full disk) or its schema is not
        current. Bounded in time: a readiness probe answers within about a second."""
        ...

    # dashboard sessions (hashes only; see ``hookline.store.sessions``)
    async def create_session(self, id_hash: str, token_hash: str, max_age: float) -> None: ...

    async def session_valid(self, id_hash: str, token_hash: str) -> bool: ...

    async def delete_session(self, id_hash: str) -> None: ...

    async def forget_sessions_of_other_tokens(self, token_hash: str) -> None: ...

    async def now(self) -> float:
        """The store's clock (see the module docstring): the one every lease and due time
        is compared with."""
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

    # schedules (``now`` is the store's clock, from ``now()``: on PostgreSQL the database's,
    # so every process sharing it agrees on which ticks are due)
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

    # pipeline: a worker claims only runs of the handlers it has loaded
    async def claim_runs(
        self, worker_id: str, handlers: Sequence[str], limit: int, lease_seconds: float
    ) -> list[ClaimedRun]: ...

    async def has_due_runs(self, handlers: Sequence[str]) -> bool: ...

    async def heartbeat(
        self, claims: Sequence[Claim], lease_seconds: float
    ) -> dict[str, RunStatus]:
        """Extend the leases still held; return ``{run id: status}`` for those ("running",
        or "cancelled": stop it, but its lease is kept until the worker lets go). A claim
        missing from the answer is over: its writes are refused from now on."""
        ...

    async def load_steps(
        self, event_id: str, handler: str, generation: int, attempts: bool = False
    ) -> list[StepRecord]: ...

    async def record_step(self, claim: Claim, outcome: StepOutcome) -> bool:
        """Write one step attempt (and the memo) if the claim is still held; False if it
        was refused — nothing is written then, and the caller must give the run up."""
        ...

    async def finish_run(self, claim: Claim, outcome: RunOutcome) -> bool:
        """Write a run's outcome if the claim is still held; False otherwise. Idempotent:
        writing the same outcome again under the same claim (a retry after an error whose
        commit was not seen) answers True."""
        ...

    async def redeliver(self, event_id: str, mode: RedeliveryMode) -> list[str] | None:
        """New runs for an event (None: no such event). ``resume``: a handler whose newest
        run is still active keeps it (its id is returned, nothing is added). ``fresh``:
        raises ``RedeliveryInProgress`` (creating nothing) while any run is active."""
        ...

    async def redeliver_matching(self, flt: EventFilter, mode: RedeliveryMode) -> int: ...

    async def cancel_run(self, run_id: str) -> RunRecord | None: ...

    async def prune(self, older_than: float, include_failed: bool) -> int: ...

    async def queue_depth(self, cap: int) -> int:
        """Runs waiting to be claimed, counted up to ``cap`` (a bounded index scan)."""
        ...

    async def run_counts(self) -> dict[str, int]:
        """Runs by status: a full count, for the CLI and tests, never for ``/metrics``."""
        ...

    async def worker_heartbeat(self, worker: WorkerInfo, stats: WorkerStats) -> None: ...

    async def worker_stopped(self, worker_id: str, stats: WorkerStats) -> None: ...

    async def live_workers(self, within_seconds: float = 30.0) -> int: ...

    async def worker_stats(self) -> WorkerStats:
        """The counters of every worker that ever ran, added up."""
        ...
