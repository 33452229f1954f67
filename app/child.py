"""The entry point of the processes ``hookline serve`` starts: workers and HTTP processes.

``python -m hookline.child worker CONFIG`` or ``python -m hookline.child http CONFIG FD INDEX``.
Not the ``hookline`` CLI: that one imports typer, rich and every command's module, about
10 MB per process that a worker never uses. ``serve`` validated the config already; a config
that became invalid since (edited, then a child restarted) exits 2 with the message.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SUPERVISOR_ENV = "HOOKLINE_SUPERVISOR_PID"


def supervisor_pid() -> int | None:
    value = os.environ.get(SUPERVISOR_ENV, "")
    return int(value) if value.isdigit() else None


def main(argv: list[str]) -> int:
    from hookline.config import load_settings
    from hookline.errors import ConfigError, StartupError
    from hookline.logs import configure_logging
    from hookline.pipeline import load_handlers
    from hookline.redaction import Redactor

    kind, config = argv[0], Path(argv[1])
    try:
        settings = load_settings(config)
        if str(Path.cwd()) not in sys.path:  # handler modules are named relative to the project
            sys.path.insert(0, str(Path.cwd()))
        registry = load_handlers(settings.pipeline.handlers)
    except (ConfigError, StartupError) as exc:
        print(f"hookline: {exc}", file=sys.stderr)
        return 2
    configure_logging(redact=Redactor(settings.secret_values()))
    if kind == "worker":
        from hookline.worker import run_worker_process

        run_worker_process(settings, registry, supervisor_pid())
    else:
        from hookline.serve import run_http_process

        fd, index = int(argv[2]), int(argv[3])
        run_http_process(settings, registry, fd=fd, index=index, supervisor_pid=supervisor_pid())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
