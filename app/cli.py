"""The ``hookline`` command line. Builds the settings once and wires the parts."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from hookline.cli_events import events_app, prune
from hookline.cli_replay import replay
from hookline.config import Settings, load_settings, resolve_config_path
from hookline.errors import ConfigError, StartupError
from hookline.logs import configure_logging
from hookline.pipeline import Registry, load_handlers
from hookline.sources import build_sources
from hookline.store import open_store

cli = typer.Typer(
    name="hookline",
    help="Verified, durable webhook ingestion and a continuation pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="Config file (else $HOOKLINE_CONFIG, else ./hookline.toml)"
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"hookline: {message}", err=True)
    return typer.Exit(code)


def settings_from(config: str | None) -> Settings:
    """Load and fully validate the settings (including each source's provider); exit 2 if bad."""
    path = resolve_config_path(config, os.environ)
    try:
        settings = load_settings(path)
        build_sources(settings.sources)
    except ConfigError as exc:
        raise fail(f"invalid config: {exc}") from None
    return settings


def registry_from(settings: Settings) -> Registry:
    if str(Path.cwd()) not in sys.path:  # handler modules are named relative to the project
        sys.path.insert(0, str(Path.cwd()))
    try:
        return load_handlers(settings.pipeline.handlers)
    except StartupError as exc:
        raise fail(str(exc)) from None


@cli.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (overrides [server] host)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (overrides [server] port)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes to start beside HTTP ([pipeline] workers)")
    ] = None,
) -> None:
    """Serve HTTP (webhooks, jobs, admin) and start the worker processes."""
    from hookline.serve import run_server

    settings = settings_from(config)
    registry = registry_from(settings)
    configure_logging()
    run_server(
        settings,
        registry,
        config_path=str(resolve_config_path(config, os.environ)),
        host=host or settings.server.host,
        port=settings.server.port if port is None else port,
        workers=settings.pipeline.workers if workers is None else workers,
    )


@cli.command()
def worker(config: ConfigOption = None) -> None:
    """Run pipeline workers only (scale-out): claim runs and execute handlers."""
    from hookline.serve import SUPERVISOR_ENV
    from hookline.worker import run_worker_process

    settings = settings_from(config)
    registry = registry_from(settings)
    configure_logging()
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    run_worker_process(settings, registry, int(supervisor) if supervisor.isdigit() else None)


@cli.command()
def migrate(config: ConfigOption = None) -> None:
    """Apply pending database migrations."""
    settings = settings_from(config)

    async def go() -> int:
        store = open_store(settings.storage)
        await store.open()
        try:
            return await store.migrate()
        finally:
            await store.close()

    version = asyncio.run(go())
    typer.echo(f"schema at version {version}")


cli.command()(replay)
cli.add_typer(events_app, name="events")
cli.command()(prune)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
