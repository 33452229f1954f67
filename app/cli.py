"""The ``hookline`` command line. Builds the settings once and wires the parts."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from hookline import __version__
from hookline.cli_events import events_app, prune
from hookline.cli_jobs import jobs_app
from hookline.cli_replay import replay
from hookline.cli_schedules import schedules_app
from hookline.config import Settings, load_settings, resolve_config_path
from hookline.errors import ConfigError, StartupError
from hookline.logs import configure_logging
from hookline.pipeline import Registry, load_handlers
from hookline.redaction import SHORT, Redactor, short_secret_names
from hookline.schedules import check_schedules
from hookline.sources import build_sources

cli = typer.Typer(
    name="hookline",
    help="Verified, durable webhook ingestion and a continuation pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts name config tables like [server]: printed as written, never read as markup.
    rich_markup_mode=None,
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
    if not path.exists():
        raise fail(missing_config(path, config))
    try:
        settings = load_settings(path)
        build_sources(settings.sources)
        check_storage(settings.storage.url)
    except ConfigError as exc:
        raise fail(f"invalid config: {exc}") from None
    return settings


def missing_config(path: Path, flag: str | None) -> str:
    """What to do when there is no config file (the usual first-run stumble)."""
    named_by = (
        "--config" if flag else "HOOKLINE_CONFIG" if os.environ.get("HOOKLINE_CONFIG") else None
    )
    where = f"{path} (from {named_by})" if named_by else f"./{path} (the default)"
    return (
        f"no config file at {where}. Pass --config FILE, or set HOOKLINE_CONFIG=FILE, "
        "or start from the annotated example: cp hookline.example.toml hookline.toml"
    )


def check_storage(url: str) -> None:
    if url.startswith("sqlite:"):
        from hookline.store.sqlite import database_dir_problem, sqlite_path

        problem = database_dir_problem(sqlite_path(url))
        if problem is not None:
            raise ConfigError(f"storage.url: {problem}")


def database_from(settings: Settings) -> None:
    """Migrate, or exit: 2 for a database hookline must not use, 1 for one out of reach."""
    from hookline.startup import UnusableDatabase, prepare_database

    try:
        prepare_database(settings.storage)
    except UnusableDatabase as exc:
        raise fail(str(exc), exc.status) from None


def registry_from(settings: Settings) -> Registry:
    if str(Path.cwd()) not in sys.path:  # handler modules are named relative to the project
        sys.path.insert(0, str(Path.cwd()))
    try:
        return load_handlers(settings.pipeline.handlers)
    except StartupError as exc:  # a module's import error may quote a configured secret
        raise fail(Redactor(settings.secret_values())(str(exc))) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hookline {__version__}")
        raise typer.Exit()


@cli.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Verified, durable webhook ingestion and a continuation pipeline."""


def start_logging(settings: Settings) -> None:
    """JSON log lines with every configured secret value redacted."""
    configure_logging(redact=Redactor(settings.secret_values()))
    short = [f"secrets.{name}" for name in short_secret_names(settings.secrets)]
    if settings.admin.token and len(settings.admin.token) < SHORT:
        short.append("admin.token")
    short += [f"api.keys[{i}]" for i, key in enumerate(settings.api.keys) if len(key) < SHORT]
    if short:
        logging.getLogger("hookline").warning(
            f"secrets shorter than {SHORT} characters are redacted only where they stand "
            "alone; use long random values",
            extra={"keys": short},
        )


@cli.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (overrides [server] host)")] = None,
    # the flags take the bounds the config's keys have
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (overrides [server] port)")
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="HTTP processes on this port ([server] processes; default: the cores)",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0, max=64, help="Worker processes to start beside HTTP ([pipeline] workers)"
        ),
    ] = None,
) -> None:
    """Serve HTTP and start the worker processes that run the handlers.

    HTTP: POST /webhooks/{source}, the jobs gateway under /jobs, the admin API and
    dashboard under /admin, /healthz, /readyz and /metrics; the [[schedules]] tick here.
    Pending database migrations are applied first, so a new database needs no
    `hookline migrate`.
    """
    from hookline.child import exec_serve

    settings = settings_from(config)
    registry = registry_from(settings)
    try:
        check_schedules(settings, registry)  # each names a loaded job, with a valid payload
    except ConfigError as exc:
        raise fail(f"invalid config: {exc}") from None
    start_logging(settings)
    database_from(settings)  # before any process starts: workers never race the migration
    # Everything is checked: this process becomes the slim serve (same pid, so the same
    # process group and parent), without typer, rich and the other commands' modules.
    exec_serve(
        str(resolve_config_path(config, os.environ)),
        host=host or settings.server.host,
        port=settings.server.port if port is None else port,
        workers=settings.pipeline.workers if workers is None else workers,
        processes=settings.server.process_count() if processes is None else processes,
    )


@cli.command()
def worker(config: ConfigOption = None) -> None:
    """Run pipeline workers only (scale-out): claim runs and execute handlers."""
    from hookline.child import supervisor_pid
    from hookline.worker import run_worker_process

    settings = settings_from(config)
    registry = registry_from(settings)
    start_logging(settings)
    database_from(settings)
    run_worker_process(settings, registry, supervisor_pid())


@cli.command()
def migrate(config: ConfigOption = None) -> None:
    """Apply pending database migrations."""
    from hookline.startup import UnusableDatabase, prepare_database

    settings = settings_from(config)
    try:  # as serve does: 2 for a database hookline must not use, 1 for one out of reach
        version = prepare_database(settings.storage)
    except UnusableDatabase as exc:
        raise fail(str(exc), exc.status) from None
    typer.echo(f"schema at version {version}")


cli.command()(replay)
cli.add_typer(events_app, name="events")
cli.add_typer(jobs_app, name="jobs")
cli.add_typer(schedules_app, name="schedules")
cli.command()(prune)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
