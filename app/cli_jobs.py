"""``hookline jobs enqueue|show|openapi``: the jobs gateway's work, from the command line.

``enqueue`` and ``show`` talk to the store directly (no server needed, like ``events``) and
validate exactly as the gateway does; ``openapi`` prints the document ``GET
/jobs/openapi.json`` serves, for generating client types without a running server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from hookline.cli_events import ConfigOption, with_store
from hookline.jobs import Enqueued, JobRejected, Jobs, parse_delay, parse_idempotency_key
from hookline.store import Store
from hookline.store.base import JobRecord
from hookline.web import jobs_openapi
from hookline.web.jobs_shapes import job_view
from hookline.web.responses import dumps

jobs_app = typer.Typer(
    name="jobs",
    help="Enqueue and inspect jobs; print the jobs gateway's OpenAPI document.",
    no_args_is_help=True,
)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"hookline: {message}", err=True)
    return typer.Exit(code)


@jobs_app.command("enqueue")
def enqueue(
    name: Annotated[str, typer.Argument(help="The job's name (@handler(job=...))")],
    payload: Annotated[str, typer.Option("--payload", help="The payload as JSON")] = "{}",
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Same key and payload: same job")
    ] = None,
    delay: Annotated[
        str | None, typer.Option("--delay", help="Not run before: 30s, 5m, 2h, 1d")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Store a job durably, validated like POST /jobs/{name}; prints {jobId, status}."""
    from hookline.cli import registry_from, settings_from  # late: app.cli imports this module

    try:
        key = parse_idempotency_key(idempotency_key) if idempotency_key is not None else None
        seconds = parse_delay(delay) if delay is not None else 0.0
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    settings = settings_from(config)
    registry = registry_from(settings)

    async def work(store: Store) -> Enqueued:
        jobs = Jobs(settings, store, registry)
        return await jobs.enqueue(
            name, payload.encode(), idempotency_key=key, delay_seconds=seconds
        )

    try:
        enqueued = with_store(settings, work)
    except JobRejected as exc:
        lines = [f"{exc.code}: {exc.detail}"]
        lines += [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors or []]
        raise _fail("\n".join(lines), 1) from None
    if enqueued.replayed:
        typer.echo(
            f"the idempotency key names job {enqueued.job_id} ({enqueued.outcome})", err=True
        )
    status = "queued" if enqueued.status == "unhandled" else enqueued.status
    typer.echo(json.dumps({"jobId": enqueued.job_id, "status": status}))


@jobs_app.command("show")
def show(
    job_id: Annotated[str, typer.Argument(help="The job id (job_...)")],
    config: ConfigOption = None,
) -> None:
    """Print a job as GET /jobs/{jobId} shows it."""
    from hookline.cli import settings_from

    settings = settings_from(config)

    async def work(store: Store) -> JobRecord | None:
        return await store.get_job(job_id)

    record = with_store(settings, work)
    if record is None:
        raise _fail(f"no job with id {job_id!r}", 1)
    # as events show writes JSON: what orjson cannot write (a lone surrogate) as its escape
    sys.stdout.buffer.write(dumps(job_view(record), indent=True) + b"\n")
    sys.stdout.buffer.flush()


@jobs_app.command("openapi")
def openapi(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write it here (default: stdout)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the OpenAPI 3.1 document of the configured jobs (what /jobs/openapi.json serves)."""
    from hookline.cli import registry_from, settings_from

    registry = registry_from(settings_from(config))
    text = json.dumps(jobs_openapi.document(registry), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror}", 1) from None
    typer.echo(f"wrote {out}", err=True)
