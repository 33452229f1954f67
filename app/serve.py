"""``hookline serve``: uvicorn for HTTP, plus N worker processes beside it.

Lifecycle: start workers → run uvicorn until SIGTERM/SIGINT (uvicorn stops
accepting, finishes in-flight requests within the graceful timeout, then the
app's lifespan flushes and closes the store) → stop the workers (SIGTERM, wait
for them to drain within their grace time, then SIGKILL what is left).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn

from hookline.config import Settings
from hookline.metrics import Metrics
from hookline.pipeline import Registry
from hookline.store import open_store
from hookline.web.app import create_app
from hookline.web.limits import InFlightLimit

log = logging.getLogger("hookline.serve")
SUPERVISOR_ENV = "HOOKLINE_SUPERVISOR_PID"


class WorkerProcesses:
    """The worker processes of ``hookline serve``: started, restarted if one exits while
    serving (a crash, an unreachable database), and stopped with a bounded grace time."""

    RESTART_DELAY_SECONDS = 1.0
    MAX_RESTART_DELAY_SECONDS = 60.0

    def __init__(self, config_path: str, count: int) -> None:
        # Workers stop by themselves if this process dies without stopping them (kill -9).
        self._env = {**os.environ, "HOOKLINE_CONFIG": config_path, SUPERVISOR_ENV: str(os.getpid())}
        self._args = [sys.executable, "-m", "hookline.cli", "worker", "--config", config_path]
        self.procs = [self._spawn() for _ in range(count)]
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="hookline-workers", daemon=True)
        self._monitor.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self._args, env=self._env)

    def _watch(self) -> None:
        delays = [self.RESTART_DELAY_SECONDS] * len(self.procs)
        due = [0.0] * len(self.procs)
        while not self._stopping.wait(0.5):
            for index, proc in enumerate(self.procs):
                if proc.poll() is None or self._stopping.is_set():
                    continue
                if proc.returncode == 0:  # stopped on purpose (e.g. Ctrl-C reached the group)
                    continue
                now = time.monotonic()
                if not due[index]:
                    due[index] = now + delays[index]
                    log.error(
                        "worker exited; restarting",
                        extra={"pid": proc.pid, "status": proc.returncode,
                               "in_seconds": delays[index]},
                    )  # fmt: skip
                elif now >= due[index]:
                    self.procs[index] = self._spawn()
                    due[index] = 0.0
                    # back off while it keeps dying (e.g. the database is down)
                    delays[index] = min(delays[index] * 2, self.MAX_RESTART_DELAY_SECONDS)

    def stop(self, grace: float) -> None:
        self._stopping.set()
        self._monitor.join()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker did not stop in time; killing", extra={"pid": proc.pid})
                proc.kill()
                proc.wait()


def run_server(
    settings: Settings,
    registry: Registry,
    *,
    config_path: str,
    host: str,
    port: int,
    workers: int,
) -> None:
    store = open_store(settings.storage)
    metrics = Metrics()

    def overloaded(scope: Any) -> None:
        log.warning("overloaded", extra={"path": str(scope["path"])[:200]})
        metrics.refused("overloaded")

    app = InFlightLimit(
        create_app(settings, store, registry, metrics), settings.server.max_in_flight, overloaded
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=_http_protocol(settings, metrics),
        h11_max_incomplete_event_size=settings.server.max_header_bytes,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.server.graceful_timeout_seconds),
        server_header=False,
        backlog=4096,
        # X-Forwarded-For / -Proto are believed from these peers alone (the client address
        # of the login lockout, and https for the session cookie)
        proxy_headers=True,
        forwarded_allow_ips=settings.server.trusted_proxies,
    )
    server = uvicorn.Server(config)
    procs: WorkerProcesses | None = None
    if workers > 0:  # the CLI has migrated the database already: no race on the schema
        procs = WorkerProcesses(config_path, workers)
    log.info("serving", extra={"host": host, "port": port, "workers": workers})
    try:
        with _stop_signals_absorbed(server):
            server.run()
    finally:
        if procs is not None:
            procs.stop(settings.pipeline.shutdown_grace_seconds)
    if not server.started:
        sys.exit(1)


def _http_protocol(settings: Settings, metrics: Metrics) -> Any:
    """The HTTP protocol with hookline's limits (hookline.web.protocol); uvicorn's h11 one,
    which caps only the head's size, where httptools is not installed."""
    if not importlib.util.find_spec("httptools"):
        log.warning("httptools is not installed: header count and read deadlines are off")
        return "h11"
    from hookline.web.protocol import ProtocolLimits, bounded_protocol

    server = settings.server
    return bounded_protocol(
        ProtocolLimits(
            max_header_bytes=server.max_header_bytes,
            max_headers=server.max_headers,
            header_timeout=server.header_timeout_seconds,
            body_timeout=server.body_timeout_seconds,
            max_connections=server.max_connections,
            on_refused=metrics.refused,
        )
    )


@contextlib.contextmanager
def _stop_signals_absorbed(server: uvicorn.Server) -> Iterator[None]:
    """Make SIGTERM/SIGINT a graceful stop with exit status 0.

    uvicorn handles them while it runs, then re-raises the signal it caught once it
    has shut down; with the default handlers that would kill the process (status
    -15) after a clean drain. This handler, in force around ``server.run()``, turns
    that re-raise (or a signal arriving before uvicorn installs its own) into a
    request to stop. The previous handlers are restored after.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
