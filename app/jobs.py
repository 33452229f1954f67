"""Jobs: work an app hands to hookline (``POST /jobs/{name}``, the CLI, schedules).

Pure of HTTP, like ``ingest``: the route hands in the job name, the raw body and the header
values it needs; this module validates them, stores the job durably with its run, and
answers with an ``Enqueued`` or raises ``JobRejected`` (a 4xx the client must fix).

A job is an event of the reserved source ``jobs`` (see ``hookline.store.jobs``). Its payload
is stored as posted. Two requests with one Idempotency-Key are "the same request" when their
payloads are the same JSON value: a client that re-serialises the same object on a retry
(another key order, other spacing) is not refused, while any change of a value is. The
fingerprint the store compares is the SHA-256 of the raw bytes (cheap, and what nearly every
retry sends); only when those differ are both payloads compared as canonical JSON (keys
sorted, no whitespace), and an equal pair is retried under the stored fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from pydantic import ValidationError

from hookline.config import Settings
from hookline.ids import new_id
from hookline.ingest import redact as redact_headers
from hookline.pipeline import Event, HandlerSpec, Registry, parse_data
from hookline.store.base import (
    ACTIVE_RUN_STATUSES,
    JOB_SOURCE,
    RUN_STATUSES,
    EnqueueOutcome,
    EnqueueResult,
    EventStatus,
    JobRecord,
    NewJob,
    NewRun,
    RunStatus,
    Store,
)
from hookline.store.jobs import key_of

MAX_KEY_CHARS = 255
# ``Hookline-Delay``: the digits allowed per unit bound it (under four years) in a way an
# OpenAPI pattern can state exactly
DELAY_PATTERN = r"[0-9]{1,8}s?|[0-9]{1,6}m|[0-9]{1,4}h|[0-9]{1,3}d"
_DELAY = re.compile(f"(?:{DELAY_PATTERN})")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


class JobRejected(Exception):
    """A request the client must fix (4xx); ``code`` is the ``error`` field."""

    def __init__(
        self, status: int, code: str, detail: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Enqueued:
    job_id: str
    status: EventStatus
    outcome: EnqueueOutcome  # created | replayed | resumed (key_reused is a JobRejected)

    @property
    def replayed(self) -> bool:
        """Answered with the job an Idempotency-Key already names."""
        return self.outcome != "created"


def parse_delay(value: str) -> float:
    """``Hookline-Delay``: ``30`` or ``30s``, ``5m``, ``2h``, ``1d`` → seconds."""
    text = value.strip()
    if _DELAY.fullmatch(text) is None:
        raise ValueError(
            "Hookline-Delay must be a whole number of s, m, h or d (e.g. 30s, 5m; "
            "at most 8 digits of seconds, 6 of minutes, 4 of hours, 3 of days)"
        )
    unit = text[-1] if text[-1] in _UNIT_SECONDS else ""
    return float(int(text.rstrip("smhd")) * _UNIT_SECONDS[unit])


def parse_idempotency_key(value: str) -> str:
    """An ``Idempotency-Key``: at most 255 printable ASCII characters, bare or given as a
    quoted string (RFC 8941 sf-string: ``"abc"``, with ``\\"`` and ``\\\\`` escapes)."""
    value = value.strip(" \t")
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise ValueError("Idempotency-Key: a quoted key must end with '\"'")
        chars: list[str] = []
        inner = iter(value[1:-1])
        for char in inner:
            if char == "\\":
                escaped = next(inner, "")
                if escaped not in ('"', "\\"):
                    raise ValueError('Idempotency-Key: only \\" and \\\\ may be escaped')
                char = escaped
            elif char == '"':
                raise ValueError('Idempotency-Key: a quote inside a quoted key must be \\"')
            chars.append(char)
        value = "".join(chars)
    if not value:
        raise ValueError("Idempotency-Key is empty")
    if len(value) > MAX_KEY_CHARS:
        raise ValueError(f"Idempotency-Key is longer than {MAX_KEY_CHARS} characters")
    if not (value.isascii() and value.isprintable()):
        raise ValueError("Idempotency-Key must be printable ASCII")
    return value


def canonical_json(data: Any) -> bytes:
    """Keys sorted, no whitespace; the stdlib for what orjson refuses (ints past 64 bits,
    lone surrogates: ``ensure_ascii`` writes those as escapes, so they encode)."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


_INVALID = object()


def _json_value(body: bytes) -> Any:
    """The body's JSON value, or ``_INVALID``."""
    if body.strip() == b"null":
        return None
    data = parse_data(body)
    return _INVALID if data is None else data


_NOT_JSON = "the body is not JSON (send the payload as JSON, e.g. {})"


def _as_json(headers: dict[str, str]) -> dict[str, str]:
    """The stored headers say JSON: a job's body is JSON whatever the client labelled it
    (``curl -d`` says urlencoded form), and ``Event.data`` is decoded by that label."""
    kept = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    return {**kept, "content-type": "application/json"}


def _validated(spec: HandlerSpec, body: bytes) -> None:
    """Raise ``JobRejected`` unless ``body`` is JSON (and valid for the job's model)."""
    if spec.payload is None:
        return
    try:
        spec.payload.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        invalid = [e["msg"] for e in errors if e["type"] == "json_invalid"]
        if invalid:  # the parser's reason and where (never the input): e.g. a lone surrogate
            reason = invalid[0].removeprefix("Invalid JSON: ")[:200]
            detail = f"the body is not JSON ({reason}); send the payload as JSON, e.g. {{}}"
            raise JobRejected(400, "invalid_json", detail) from None
        raise JobRejected(
            422,
            "invalid_payload",
            f"the payload does not match {spec.payload.__name__} ({len(errors)} error(s))",
            [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors],
        ) from None


class Jobs:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        self._clock = clock

    def handler(self, name: str) -> HandlerSpec | None:
        return self._registry.job(name)

    async def enqueue(
        self,
        name: str,
        body: bytes,
        *,
        idempotency_key: str | None = None,
        delay_seconds: float = 0.0,
        headers: Mapping[str, str] | None = None,
        run_at: float | None = None,
    ) -> Enqueued:
        """Validate and store a job; ``run_at`` (absolute) wins over ``delay_seconds``."""
        job = self.build(
            name,
            body,
            idempotency_key=idempotency_key,
            delay_seconds=delay_seconds,
            headers=headers,
            run_at=run_at,
        )
        result = await self._store.enqueue_job(job)
        if result.outcome == "key_reused":
            result = await self._same_value_retry(job, result)
        return self.answer(result)

    def build(
        self,
        name: str,
        body: bytes,
        *,
        idempotency_key: str | None = None,
        delay_seconds: float = 0.0,
        headers: Mapping[str, str] | None = None,
        run_at: float | None = None,
        now: float | None = None,
        concurrency_key: str | None = None,
    ) -> NewJob:
        """Validate a job and make the ``NewJob`` to store (``enqueue``; a schedule stores
        it together with its tick). Runs with one ``concurrency_key`` take turns: the
        caller's (a schedule's overlap rule), else the one the handler's key function gives
        for the job's event, as it gives one for a webhook's."""
        spec = self._registry.job(name)
        if spec is None:
            raise JobRejected(404, "unknown_job", f"no job named {name!r} is configured")
        _validated(spec, body)
        # for a model too: pydantic's parser takes NaN and Infinity, which are no JSON (the
        # handler would get None as event.data)
        if _json_value(body) is _INVALID:
            raise JobRejected(400, "invalid_json", _NOT_JSON)
        now = self._clock() if now is None else now
        job_id = new_id("job")
        # credentials by name (Authorization...); the dashboard redacts secret values
        stored_headers = _as_json(redact_headers(headers or {}, frozenset()))
        if concurrency_key is None and spec.concurrency_key is not None:
            event = Event(
                id=job_id,
                source=JOB_SOURCE,
                provider_event_id=key_of(name, idempotency_key) if idempotency_key else job_id,
                type=name,
                data=parse_data(body, stored_headers),
                body=body,
                headers=stored_headers,  # what the handler will see: no credentials
                received_at=datetime.fromtimestamp(now, UTC),
            )
            concurrency_key = spec.key_for(event)
        return NewJob(
            id=job_id,
            name=name,
            payload=body,
            created_at=now,
            run_at=run_at if run_at is not None else now + delay_seconds,
            runs=[
                NewRun(
                    "run_" + job_id.removeprefix("job_"),  # unique as the job id; no syscall
                    spec.name,
                    spec.max_attempts or self._settings.pipeline.max_attempts,
                    concurrency_key,
                )
            ],
            idempotency_key=idempotency_key,
            fingerprint=hashlib.sha256(body).hexdigest() if idempotency_key is not None else None,
            headers=stored_headers,
        )

    @staticmethod
    def answer(result: EnqueueResult) -> Enqueued:
        """What the store did → the answer (``key_reused`` is the client's to fix)."""
        if result.outcome == "key_reused":
            raise JobRejected(
                422,
                "idempotency_key_reused",
                f"this Idempotency-Key was used for job {result.job_id} with another payload",
            )
        return Enqueued(result.job_id, result.status, result.outcome)

    async def _same_value_retry(self, job: NewJob, refused: EnqueueResult) -> EnqueueResult:
        """Other bytes under a used key: the same request still if it is the same JSON
        value; then enqueue again under the stored payload's fingerprint."""
        stored = await self._store.get_event(refused.job_id)
        if stored is None:  # pruned meanwhile: the key is free again
            return await self._store.enqueue_job(job)
        mine, theirs = _json_value(job.payload), _json_value(stored.body)
        if mine is _INVALID or theirs is _INVALID or canonical_json(mine) != canonical_json(theirs):
            return refused
        same = replace(job, fingerprint=hashlib.sha256(stored.body).hexdigest())
        return await self._store.enqueue_job(same)

    async def enqueue_data(
        self,
        name: str,
        data: Any,
        *,
        idempotency_key: str | None = None,
        run_at: float | None = None,
    ) -> Enqueued:
        """Enqueue a payload given as a value (the CLI; schedules)."""
        return await self.enqueue(
            name, canonical_json(data), idempotency_key=idempotency_key, run_at=run_at
        )

    async def get(self, job_id: str) -> JobRecord:
        record = await self._store.get_job(job_id)
        if record is None:
            raise JobRejected(404, "not_found", "no job with this id")
        return record

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel the job's active run; 409 when the job has finished."""
        record = await self.get(job_id)
        run = record.runs[-1] if record.runs else None
        if run is None or run.status not in ACTIVE_RUN_STATUSES:
            raise JobRejected(
                409, "job_finished", f"the job has already finished ({job_status(record)})"
            )
        cancelled = await self._store.cancel_run(run.id)
        if cancelled is None or cancelled.status != "cancelled":  # it finished meanwhile
            return await self._finished(job_id)
        return await self.get(job_id)

    async def _finished(self, job_id: str) -> JobRecord:
        record = await self.get(job_id)
        raise JobRejected(
            409, "job_finished", f"the job has already finished ({job_status(record)})"
        )


def job_status(record: JobRecord) -> RunStatus:
    """The job's status: its newest run's (a job has one handler). A job stored with no
    run (its handler was not loaded) reads as ``failed``."""
    status = record.summary.status
    return cast(RunStatus, status) if status in RUN_STATUSES else "failed"
