"""The entry point of the processes ``hookline serve`` runs: workers, HTTP processes, and
``serve`` itself once the CLI has checked everything.

``python -m hookline.child worker CONFIG``, ``python -m hookline.child http CONFIG FD INDEX``
or ``python -m hookline.child serve CONFIG HOST PORT WORKERS PROCESSES`` (``exec_serve``).
Not the ``hookline`` CLI: that one imports typer, rich and every command's module, about
6 MB per process that no long-running process uses. ``serve`` validated the config already;
a config that became invalid since (edited, then a child restarted) exits 2 with the message.
``serve`` forks its first workers and HTTP processes rather than running these commands
(``hookline.fork``), with the settings it read; restarts run the commands.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hookline.config import Settings
    from hookline.fork import ForkedChild

SUPERVISOR_ENV = "HOOKLINE_SUPERVISOR_PID"


def supervisor_pid() -> int | None:
    value = os.environ.get(SUPERVISOR_ENV, "")
    return int(value) if value.isdigit() else None


def exec_serve(config: str, *, host: str, port: int, workers: int, processes: int) -> None:
    """Replace this process (the CLI, after it validated the config and migrated) with
    ``python -m hookline.child serve …``. The pid, hence the process group, the parent and
    whatever watches them, stay the same; the CLI's imports and the garbage of its checks
    are gone (about 8 MB less for the process that runs for days)."""
    sys.stdout.flush()
    sys.stderr.flush()
    args = ["serve", config, host, str(port), str(workers), str(processes)]
    os.execv(sys.executable, [sys.executable, "-m", "hookline.child", *args])


def child_environment(config: str, supervisor: int) -> None:
    """What a child's environment says (``ChildProcesses`` passes the same to the ones it
    starts with ``python -m hookline.child``)."""
    os.environ["HOOKLINE_CONFIG"] = config
    os.environ[SUPERVISOR_ENV] = str(supervisor)


def _fork_workers(settings: Settings, config: str, workers: int) -> list[ForkedChild] | None:
    """The workers, forked from this process (``hookline.fork``) before it loads the handler
    modules and the HTTP stack: each worker then loads the handler modules itself, as one
    started with ``python -m hookline.child worker`` does, so no connection or other state a
    handler module makes at import is shared between processes. It keeps the settings read
    here (validating them again would fault in pydantic-core's code: ~3 MiB of RSS). None
    if forking is not safe here."""
    from hookline.fork import can_fork, fork

    if workers <= 0 or not can_fork():
        return None
    serve = os.getpid()

    def worker() -> None:
        child_environment(config, serve)
        sys.exit(_run(["worker", config], settings, forked_child=True))

    return [fork("hookline-worker", worker) for _ in range(workers)]


def main(argv: list[str]) -> int:
    from hookline.pages import one_malloc_arena

    one_malloc_arena()  # first: no thread yet; the children serve forks inherit it
    if argv[0] != "worker":  # serve and HTTP processes run uvicorn's server, not its CLI
        from hookline.web.uvicorn_core import defer_uvicorn_main

        defer_uvicorn_main()
    from hookline.config import load_settings
    from hookline.errors import ConfigError

    try:
        settings = load_settings(Path(argv[1]))
    except ConfigError as exc:
        print(f"hookline: {exc}", file=sys.stderr)
        return 2
    if str(Path.cwd()) not in sys.path:  # handler modules are named relative to the project
        sys.path.insert(0, str(Path.cwd()))
    if argv[0] != "serve":
        return _run(argv, settings)
    from hookline.shared_dir import made_for_serve

    with made_for_serve(int(argv[5])):  # before anything imports prometheus_client
        forked = _fork_workers(settings, argv[1], int(argv[4]))
        return _run(argv, settings, forked)


def _run(
    argv: list[str],
    settings: Settings,
    forked: list[ForkedChild] | None = None,
    *,
    forked_child: bool = False,
) -> int:
    """Load the handler modules, then run process ``argv[0]`` (serve, http or worker).
    ``forked_child``: this is a worker forked from ``serve`` (else a new interpreter, whose
    imports touched pages of the libraries that it unmaps before it starts working:
    ``hookline.pages``; a forked one did not touch those, ``serve`` did)."""
    from hookline.errors import ConfigError, StartupError
    from hookline.logs import configure_logging
    from hookline.pages import release_file_pages
    from hookline.pipeline import load_handlers
    from hookline.redaction import Redactor

    kind, config = argv[0], argv[1]
    try:
        registry = load_handlers(settings.pipeline.handlers)
    except (ConfigError, StartupError) as exc:  # its import error may quote a secret
        print(f"hookline: {Redactor(settings.secret_values())(str(exc))}", file=sys.stderr)
        if forked:
            from hookline.fork import stop

            stop(forked, settings.pipeline.shutdown_grace_seconds)
        return 2
    configure_logging(redact=Redactor(settings.secret_values()))
    if kind == "worker":
        from hookline.worker import run_worker_process

        if not forked_child:
            release_file_pages()
        run_worker_process(settings, registry, supervisor_pid())
    elif kind == "serve":
        from hookline.serve import run_server

        host, port, workers, processes = argv[2], int(argv[3]), int(argv[4]), int(argv[5])
        run_server(settings, registry, config_path=config, host=host, port=port,
                   workers=workers, processes=processes, forked_workers=forked)  # fmt: skip
    else:
        from hookline.serve import run_http_process

        fd, index = int(argv[2]), int(argv[3])
        release_file_pages()
        run_http_process(settings, registry, fd=fd, index=index, supervisor_pid=supervisor_pid())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
