"""``hookline events list|show|redeliver|export`` and ``hookline prune``.

These talk to the store directly (no server needed) and are safe beside a running
``hookline serve`` on the same database: SQLite in WAL mode lets one process read
while another writes, and writes wait for the write lock.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from hookline.config import Settings
from hookline.errors import RedeliveryInProgress, StoreError
from hookline.payload_view import payload_json
from hookline.redaction import Redactor
from hookline.replay import FixtureError, fixture_from_event
from hookline.store import Store, open_store
from hookline.store.base import (
    EVENT_STATUSES,
    JOB_SOURCE,
    EventFilter,
    EventRecord,
    EventSummary,
)
from hookline.web import shapes
from hookline.web.responses import dumps, iso

T = TypeVar("T")

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="Config file (else $HOOKLINE_CONFIG, else ./hookline.toml)"
    ),
]
EventId = Annotated[str, typer.Argument(help="The hookline event id (evt_...)")]
_DURATION = re.compile(r"([0-9]{1,12})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

events_app = typer.Typer(
    name="events",
    help="Inspect stored events: list, show, redeliver, export.",
    no_args_is_help=True,
)


def _settings(config: str | None) -> Settings:
    from hookline.cli import settings_from  # late: hookline.cli imports this module

    return settings_from(config)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"hookline: {message}", err=True)
    return typer.Exit(code)


def _no_event(event_id: str) -> typer.Exit:
    return _fail(f"no event with id {event_id!r}", 1)


MAX_AGE_SECONDS = 365_000 * 86_400


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s`` → seconds; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: use a whole number and a unit s, m, h or d (e.g. 30d)"
        )
    seconds = float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if seconds > MAX_AGE_SECONDS:  # before any stored event, and before datetime's year 1
        raise ValueError(f"{text!r} is more than 1000 years")
    return seconds


def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store, check its schema, run ``work``, close it; exit 1 on failure."""
    url = settings.storage.url
    if url.startswith("sqlite:"):
        from hookline.store.sqlite import sqlite_path

        path = sqlite_path(url)
        if path != ":memory:" and not Path(path).exists():  # never create a stray empty file
            raise _fail(f"no database at {path} (run `hookline migrate` first)", 1)

    async def go() -> T:
        store = open_store(settings.storage)
        await store.open()
        try:
            await store.check_ready()
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except StoreError as exc:
        raise _fail(f"store: {exc}", 1) from None


def _get_event(settings: Settings, event_id: str) -> EventRecord:
    async def work(store: Store) -> EventRecord | None:
        return await store.get_event(event_id)

    record = with_store(settings, work)
    if record is None:
        raise _no_event(event_id)
    return record


def _print_table(console: Console, table: Table) -> None:
    # Piped output would be cut to 80 columns; give it the width the table needs instead.
    if not console.is_terminal:
        wide = console.options.update_width(100_000)
        console.width = max(80, console.measure(table, options=wide).maximum)
    console.print(table)


@events_app.command("list")
def list_events(
    source: Annotated[str | None, typer.Option(help="Only this source")] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="Event type; '*' is a wildcard (invoice.*)")
    ] = None,
    status: Annotated[str | None, typer.Option(help=f"One of {', '.join(EVENT_STATUSES)}")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many")] = 50,
    config: ConfigOption = None,
) -> None:
    """List stored events, newest first."""
    if status is not None and status not in EVENT_STATUSES:
        raise _fail(f"--status must be one of {', '.join(EVENT_STATUSES)}")
    settings = _settings(config)
    flt = EventFilter(source=source, type_glob=type_, status=status)

    async def work(store: Store) -> list[EventSummary]:
        return await store.list_events(flt, limit, None)

    events = with_store(settings, work)
    table = Table("id", "source", "event id", "type", "status", "received at")
    for event in events:
        table.add_row(
            event.id,
            event.source,
            event.provider_event_id,
            event.type,
            event.status,
            iso(event.received_at),
        )
    console = Console(highlight=False)
    _print_table(console, table)
    console.print(f"{len(events)} event(s)" + (f" (limit {limit})" if len(events) == limit else ""))


@events_app.command("show")
def show(event_id: EventId, config: ConfigOption = None) -> None:
    """Print an event with its runs and steps as JSON (signature headers are redacted)."""
    settings = _settings(config)
    record = _get_event(settings, event_id)
    # the payload as hookline.payload_view shows it, indented one level in (a newline is
    # only ever whitespace between JSON tokens, so shifting lines changes no value)
    payload = payload_json(record.body, record.headers, indent=True).replace(b"\n", b"\n  ")
    detail = {**shapes.event_detail(record), "payload": orjson.Fragment(payload)}
    detail = shapes.redacted(detail, Redactor(settings.secret_values()))  # no secret shown
    sys.stdout.buffer.write(dumps(detail, indent=True) + b"\n")
    sys.stdout.buffer.flush()


@events_app.command("redeliver")
def redeliver(
    event_id: EventId,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Run every step again (default: resume)")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run an event's handlers again; prints the new run ids."""
    settings = _settings(config)

    async def work(store: Store) -> list[str] | None:
        return await store.redeliver(event_id, "fresh" if fresh else "resume")

    try:
        run_ids = with_store(settings, work)
    except RedeliveryInProgress as exc:
        raise _fail(f"event {event_id} not redelivered: {exc}", 1) from None
    if run_ids is None:
        raise _no_event(event_id)
    if not run_ids:
        typer.echo(f"event {event_id} has no handler runs (unhandled): nothing to do", err=True)
    for run_id in run_ids:
        typer.echo(run_id)


@events_app.command("export")
def export(
    event_id: EventId,
    out: Annotated[Path, typer.Option("--out", "-o", help="The fixture file to write")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Overwrite an existing file, or write through a link"),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write an event as a replayable fixture (its signature is redacted: replaying it
    signs it afresh with the source's secret)."""
    if not force and out.is_symlink():
        raise _fail(f"{out} is a symbolic link; pass --force to write through it", 1)
    if not force and out.exists():
        raise _fail(f"{out} exists; pass --force to overwrite it", 1)
    record = _get_event(_settings(config), event_id)
    if record.summary.source == JOB_SOURCE:  # no webhook source takes it back
        raise _fail(
            f"{event_id} is a job, not a webhook: no fixture can replay it; run it again with "
            f"`hookline events redeliver {event_id}` or `hookline jobs enqueue`",
            1,
        )
    try:
        fixture = fixture_from_event(record.summary.source, record.headers, record.body)
    except FixtureError as exc:
        raise _fail(f"cannot export {event_id}: {exc}", 1) from None
    text = json.dumps(fixture, indent=2, ensure_ascii=False) + "\n"
    try:
        if force:
            out.write_text(text, encoding="utf-8")
        else:  # O_EXCL: a file or link put there since the check above is not written through
            with out.open("x", encoding="utf-8") as file:
                file.write(text)
    except FileExistsError:
        raise _fail(f"{out} exists; pass --force to overwrite it", 1) from None
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror}", 1) from None
    typer.echo(f"wrote {out}")


def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Delete events received longer ago than this: 30d, 12h, 15m, 90s"
        ),
    ],
    include_failed: Annotated[
        bool, typer.Option("--include-failed", help="Also delete events with failed runs")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Delete events received longer ago than --older-than, with their runs and steps.

    Events with active runs are always kept; events with failed runs unless --include-failed.
    """
    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise _fail(f"--older-than: {exc}") from None
    settings = _settings(config)
    cutoff = time.time() - seconds

    async def work(store: Store) -> int:
        return await store.prune(cutoff, include_failed)

    count = with_store(settings, work)
    kept = "" if include_failed else "; events with failed runs kept"
    typer.echo(f"pruned {count} event(s) received before {iso(cutoff)}{kept}")
