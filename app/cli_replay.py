"""``hookline replay``: send captured fixtures to a running server (SPEC §5).

One line per fixture (file, source, status, provider event id and duplicate, or the
error), then a summary; the exit status is 1 when any fixture failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from hookline.config import Settings
from hookline.replay import (
    FixtureError,
    Outcome,
    Tally,
    default_url,
    find_fixtures,
    load_fixture,
    prepare,
    send,
)
from hookline.sources import build_sources

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="Config file (else $HOOKLINE_CONFIG, else ./hookline.toml)"
    ),
]
TIMEOUT_SECONDS = 30.0


def _settings(config: str | None) -> Settings:
    from hookline.cli import settings_from  # late: hookline.cli imports this module

    return settings_from(config)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"hookline: {message}", err=True)
    return typer.Exit(code)


def _line(path: Path, source: str, outcome: Outcome | None, note: str) -> Text:
    """``file  source  status  eventId  duplicate=…`` or ``file  source  status  error: detail``."""
    status = "---" if outcome is None or outcome.status is None else str(outcome.status)
    text = Text.assemble((str(path), "bold"), "  ", source, "  ")
    if outcome is not None and outcome.ok:
        style = "yellow" if outcome.duplicate else "green"
        text.append(status, style)
        if outcome.handshake:
            text.append("  handshake answered (Slack url_verification or ssl_check: not stored)")
        else:
            text.append(f"  {outcome.event_id}  duplicate={str(outcome.duplicate).lower()}")
        if note:
            text.append(f"  {note}", "dim")
    else:
        text.append(status, "red")
        text.append(f"  {note}", "red")
    return text


def replay(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Fixture files, or directories searched recursively for *.json"),
    ],
    url: Annotated[
        str | None,
        typer.Option(help="Server base URL (default: [server] host and port of the config)"),
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Send to this source instead of the fixture's own")
    ] = None,
    resign: Annotated[
        bool,
        typer.Option(
            "--resign",
            help="Sign every fixture afresh (first secret, current time). Implied for a "
            "redacted signature (an exported event) and for a genuine but stale one.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Send captured webhook fixtures to POST /webhooks/{source}; exit 1 if any failed."""
    settings = _settings(config)
    if url is not None and not url.startswith(("http://", "https://")):
        raise _fail(f"--url must start with http:// or https:// (got {url!r})")
    if url is not None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:  # e.g. a port that is no number
            raise _fail(f"--url is not a valid URL ({exc}; got {url!r})") from None
        if parsed.query or parsed.fragment:  # /webhooks/{source} is appended to the path
            raise _fail(f"--url is a base URL: no ?query or #fragment (got {url!r})")
    base_url = url or default_url(settings.server.host, settings.server.port)
    providers = {name: s.provider for name, s in build_sources(settings.sources).items()}
    skipped: list[str] = []
    try:
        files = find_fixtures(paths, skipped)
    except FixtureError as exc:
        raise _fail(str(exc)) from None
    for reason in skipped:
        typer.echo(f"hookline: {reason}", err=True)
    if not files:
        raise _fail("no fixture files (*.json) found in " + ", ".join(map(str, paths)))

    out = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True)
    bar = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not (err.is_terminal and any(p.is_dir() for p in paths)),
    )
    tally = Tally()
    with httpx.Client(timeout=TIMEOUT_SECONDS) as client, bar:
        task = bar.add_task("replay", total=len(files))
        for path in files:
            target = source or "-"
            outcome: Outcome | None = None
            try:
                fixture = load_fixture(path)
                target = source or fixture.source
                delivery = prepare(
                    fixture,
                    source=target,
                    provider=providers.get(target),
                    now=time.time(),
                    force=resign,
                )
            except FixtureError as exc:
                note = f"invalid_fixture: {exc}"
            else:
                outcome = send(client, base_url, delivery)
                if outcome.ok:
                    note = f"re-signed ({delivery.resigned})" if delivery.resigned else ""
                else:
                    note = f"{outcome.error}: {outcome.detail}"
            tally.add(outcome)
            out.print(_line(path, target, outcome, note))
            bar.advance(task)

    summary = (
        f"{tally.fixtures} fixture(s): sent {tally.sent}, accepted {tally.accepted}, "
        f"duplicate {tally.duplicate}, failed {tally.failed}"
    )
    out.print(Text(summary, "bold red" if tally.failed else "bold"))
    if tally.failed:
        raise typer.Exit(1)
