"""``hookline schedules list|trigger|pause|resume``: schedules, from the command line.

Like ``events``, these talk to the store directly (no server needed); a pause or resume
is seen by every running ``serve`` at its schedule's next tick.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hookline.cli_events import ConfigOption, with_store
from hookline.errors import ConfigError
from hookline.jobs import JobRejected, Jobs
from hookline.pipeline import Registry
from hookline.schedules import Schedules, ScheduleView, UnknownSchedule, check_schedules
from hookline.store import Store

schedules_app = typer.Typer(
    name="schedules",
    help="List schedules with their last ticks; trigger, pause or resume one.",
    no_args_is_help=True,
)
NameArgument = Annotated[str, typer.Argument(help="The schedule's name ([[schedules]] name)")]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"hookline: {message}", err=True)
    return typer.Exit(code)


def _run(config: str | None, name: str | None, work: str, load_handlers: bool = False) -> object:
    from hookline.cli import registry_from, settings_from

    settings = settings_from(config)
    registry = Registry()
    if load_handlers:
        registry = registry_from(settings)
        try:
            check_schedules(settings, registry)
        except ConfigError as exc:
            raise _fail(f"invalid config: {exc}", 2) from None
    if name is not None and settings.schedule(name) is None:
        configured = ", ".join(s.name for s in settings.schedules) or "none"
        raise _fail(f"no schedule named {name!r} is configured (schedules: {configured})", 1)

    async def go(store: Store) -> object:
        jobs = Jobs(settings, store, registry)
        schedules = Schedules(settings, store, jobs)
        if work == "list":
            return await schedules.views()
        assert name is not None
        if work == "trigger":
            return await schedules.trigger(name)
        return await schedules.set_paused(name, work == "pause")

    try:
        return with_store(settings, go)
    except (UnknownSchedule, JobRejected) as exc:
        raise _fail(str(exc), 1) from None


@schedules_app.command("list")
def list_schedules(config: ConfigOption = None) -> None:
    """Every configured schedule: when it ticks, paused or not, its next and last ticks."""
    views = _run(config, None, "list")
    assert isinstance(views, list)
    table = Table(box=None, pad_edge=False)
    for column in ("schedule", "when", "job", "state", "next tick (UTC)", "last ticks"):
        table.add_column(column)
    for view in views:
        assert isinstance(view, ScheduleView)
        c = view.config
        when = f"{c.cron} ({c.timezone})" if c.cron is not None else f"every {c.every}"
        ticks = "\n".join(
            f"{_when(t.tick_at)} {t.outcome}" + (f" {t.job_id}" if t.job_id else "")
            for t in view.state.last_ticks[:3]
        )
        state = "paused" if view.state.paused else "active"
        next_tick = _when(view.next_tick_at) if view.next_tick_at is not None else "-"
        table.add_row(c.name, when, c.job, state, next_tick, ticks or "-")
    if not views:
        typer.echo("no schedules are configured")
        return
    Console(highlight=False, width=200).print(table)


@schedules_app.command("trigger")
def trigger(name: NameArgument, config: ConfigOption = None) -> None:
    """Enqueue the schedule's job now (also while paused); prints {"jobId"}."""
    job_id = _run(config, name, "trigger", load_handlers=True)
    typer.echo(json.dumps({"jobId": job_id}))


@schedules_app.command("pause")
def pause(name: NameArgument, config: ConfigOption = None) -> None:
    """Stop the schedule ticking (kept across restarts) until it is resumed."""
    _run(config, name, "pause")
    typer.echo(f"paused {name}")


@schedules_app.command("resume")
def resume(name: NameArgument, config: ConfigOption = None) -> None:
    """Let the schedule tick again; ticks while it was paused are not caught up."""
    _run(config, name, "resume")
    typer.echo(f"resumed {name}")
