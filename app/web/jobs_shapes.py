"""The JSON shapes of the jobs gateway, as pydantic models (camelCase on the wire).

The same models produce the answers (``model_dump(by_alias=True)``) and their JSON Schema in
``/jobs/openapi.json``, so the document cannot drift from what the gateway sends.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from hookline.jobs import job_status
from hookline.store.base import JobRecord, RunStatus
from hookline.web.responses import iso

JobStatus = RunStatus  # queued | running | retrying | succeeded | failed | cancelled


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class JobAccepted(_Shape):
    """The answer to an enqueue (202), and to a cancel (202)."""

    job_id: str = Field(description="The job's id; `GET /jobs/{jobId}` shows it.")
    status: JobStatus = Field(
        description="`queued` for a new job; for a replayed Idempotency-Key, the job's status now."
    )


class Job(_Shape):
    """A job and how it is doing."""

    job_id: str
    name: str = Field(description="The job's name (`POST /jobs/{name}`).")
    status: JobStatus
    attempts: int = Field(ge=0, description="Handler attempts so far, over all its runs.")
    result: Any = Field(
        description="The handler's return value once the job `succeeded`, else null."
    )
    error: str | None = Field(
        description="The last failure's message (first line) while `retrying` or once "
        "`failed`; the dashboard has the traceback."
    )
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})
    run_at: str = Field(
        json_schema_extra={"format": "date-time"},
        description="Not run before this time (the request's time plus `Hookline-Delay`).",
    )


class Error(_Shape):
    """Every error answer."""

    error: str = Field(description="A stable code, e.g. `unknown_job`.")
    detail: str = Field(description="Human-readable text.")


class PayloadError(_Shape):
    """One way the payload fails the job's model (pydantic's error)."""

    loc: list[str | int] = Field(description='Where in the payload, e.g. `["report_id"]`.')
    msg: str
    type: str = Field(description="pydantic's error type, e.g. `missing`.")


class InvalidPayload(_Shape):
    """422 `invalid_payload`: the payload does not match the job's model."""

    error: Literal["invalid_payload"]
    detail: str
    errors: list[PayloadError]


def job_view(record: JobRecord) -> dict[str, Any]:
    run = record.runs[-1] if record.runs else None
    status = job_status(record)
    error = None
    if run is not None and run.error and status in ("retrying", "failed"):
        error = run.error.split("\n", 1)[0]
    elif run is None:
        error = "no handler of this job was loaded when it was enqueued"
    created = record.summary.received_at
    return Job(
        job_id=record.summary.id,
        name=record.summary.type,
        status=status,
        attempts=sum(r.attempts for r in record.runs),
        result=run.result if run is not None and status == "succeeded" else None,
        error=error,
        created_at=iso(created) or "",
        updated_at=iso(max(created, run.updated_at) if run else created) or "",
        run_at=iso(record.run_at) or "",
    ).model_dump(by_alias=True)
