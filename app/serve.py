"""``hookline serve``: P HTTP processes on one port, plus N worker processes beside them.

Lifecycle: bind the port → apply migrations → start the other HTTP processes (they
inherit the listening socket) and the workers → run uvicorn until SIGTERM/SIGINT
(uvicorn stops accepting, finishes in-flight requests within the graceful timeout,
then the app's lifespan flushes and closes the store) → stop the other HTTP
processes (SIGTERM: each drains the same way) → stop the workers (SIGTERM, wait for
them to drain within their grace time, then SIGKILL what is left).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

import uvicorn

from hookline.child import SUPERVISOR_ENV, child_environment
from hookline.config import Settings
from hookline.fork import ForkedChild, can_fork, fork
from hookline.fork import stop as stop_forked
from hookline.metrics import Metrics
from hookline.pages import release_file_pages
from hookline.pipeline import Registry
from hookline.store import open_store
from hookline.web.app import create_app
from hookline.web.limits import InFlightLimit

log = logging.getLogger("hookline.serve")

Child = subprocess.Popen[bytes] | ForkedChild


class ChildProcesses:
    """Child processes of ``hookline serve`` (its workers, its other HTTP processes):
    started, restarted if one exits while serving (a crash, an unreachable database, a
    ``kill -9``), and stopped with a bounded grace time."""

    RESTART_DELAY_SECONDS = 1.0
    MAX_RESTART_DELAY_SECONDS = 60.0
    # A child that ran this long before it exited was healthy: its next restart is quick
    # again (the backoff is for a child that keeps dying, e.g. while the database is down).
    STABLE_SECONDS = 60.0

    def __init__(
        self,
        kind: str,
        commands: list[list[str]],
        config_path: str,
        pass_fds: tuple[int, ...] = (),
        first: Sequence[Child] | None = None,
    ) -> None:
        """``first``: the children already started (forked, ``hookline.fork``), one per
        command; else each command is run. A restart always runs its command."""
        self.kind = kind
        # Children stop by themselves if this process dies without stopping them (kill -9).
        self._env = {**os.environ, "HOOKLINE_CONFIG": config_path, SUPERVISOR_ENV: str(os.getpid())}
        self._commands = commands
        self._pass_fds = pass_fds
        self.procs: list[Child] = (
            list(first) if first else [self._spawn(index) for index in range(len(commands))]
        )
        self._stopping = threading.Event()
        self._monitor = threading.Thread(
            target=self._watch, name=f"hookline-{kind.replace(' ', '-')}", daemon=True
        )
        self._monitor.start()

    def _spawn(self, index: int) -> Child:
        return subprocess.Popen(self._commands[index], env=self._env, pass_fds=self._pass_fds)

    def _watch(self) -> None:
        delays = [self.RESTART_DELAY_SECONDS] * len(self.procs)
        due = [0.0] * len(self.procs)
        started = [time.monotonic()] * len(self.procs)
        while not self._stopping.wait(0.5):
            for index, proc in enumerate(self.procs):
                if proc.poll() is None or self._stopping.is_set():
                    continue
                if proc.returncode == 0:  # stopped on purpose (e.g. Ctrl-C reached the group)
                    continue
                now = time.monotonic()
                if not due[index]:
                    if now - started[index] >= self.STABLE_SECONDS:
                        delays[index] = self.RESTART_DELAY_SECONDS
                    due[index] = now + delays[index]
                    log.error(
                        f"{self.kind} exited; restarting",
                        extra={"pid": proc.pid, "status": proc.returncode,
                               "in_seconds": delays[index]},
                    )  # fmt: skip
                elif now >= due[index]:
                    self.procs[index] = self._spawn(index)
                    started[index] = now
                    due[index] = 0.0
                    # back off while it keeps dying (e.g. the database is down)
                    delays[index] = min(delays[index] * 2, self.MAX_RESTART_DELAY_SECONDS)

    def signal_all(self, signum: int) -> None:
        """Stop restarting them and send each one ``signum``; ``stop`` then waits."""
        self._stopping.set()
        self._monitor.join()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    def stop(self, grace: float) -> None:
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(f"{self.kind} did not stop in time; killing",
                            extra={"pid": proc.pid})  # fmt: skip
                proc.kill()
                proc.wait()


def _child(*args: str) -> list[str]:
    return [sys.executable, "-m", "hookline.child", *args]


def _app(settings: Settings, registry: Registry, index: int) -> tuple[InFlightLimit, Metrics]:
    """HTTP process ``index``'s app, bounded in requests in flight, and its metrics."""
    store = open_store(settings.storage)
    metrics = Metrics()

    def overloaded(scope: Any) -> None:
        log.warning("overloaded", extra={"path": str(scope["path"])[:200]})
        metrics.refused("overloaded")

    app = create_app(settings, store, registry, metrics, http_process=index)
    return InFlightLimit(app, settings.server.max_in_flight, overloaded), metrics


def uvicorn_config(
    settings: Settings, app: InFlightLimit, metrics: Metrics, host: str, port: int
) -> uvicorn.Config:
    return uvicorn.Config(
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


def run_server(
    settings: Settings,
    registry: Registry,
    *,
    config_path: str,
    host: str,
    port: int,
    workers: int,
    processes: int,
    forked_workers: Sequence[ForkedChild] | None = None,
) -> None:
    """HTTP process 0 (this one: migrations, the scheduler, the supervisor) and, with
    ``processes`` > 1, the other HTTP processes on the same listening socket, plus the
    worker processes (``forked_workers``: already started, else started here)."""
    app, metrics = _app(settings, registry, 0)
    config = uvicorn_config(settings, app, metrics, host, port)
    try:
        sock = config.bind_socket()  # bound once, here; the other HTTP processes inherit it
    except SystemExit:  # uvicorn logged why (e.g. the port is in use)
        stop_forked(forked_workers or (), settings.pipeline.shutdown_grace_seconds)
        sys.exit(1)
    server = uvicorn.Server(config)
    http: ChildProcesses | None = None
    procs: ChildProcesses | None = None
    # the CLI has migrated the database already: no child races the schema
    # A copy of the listening socket for the children, kept open until they are stopped:
    # one restarted while uvicorn here has already closed its socket gets a valid one.
    fd = os.dup(sock.fileno()) if processes > 1 else -1
    first = _fork_http(settings, registry, config_path, fd, processes) if processes > 1 else None
    # Before any thread starts (the supervisors' below): the pages that importing touched in
    # the libraries are unmapped here, and only those serving uses come back.
    release_file_pages()
    if processes > 1:
        commands = [
            _child("http", config_path, str(fd), str(index)) for index in range(1, processes)
        ]
        http = ChildProcesses("http process", commands, config_path, pass_fds=(fd,), first=first)
    if workers > 0:
        procs = ChildProcesses("worker", [_child("worker", config_path)] * workers,
                               config_path, first=forked_workers)  # fmt: skip
    log.info(
        "serving", extra={"host": host, "port": port, "processes": processes, "workers": workers}
    )
    try:
        with _stop_signals_absorbed(server):
            server.run(sockets=[sock])
    finally:
        if http is not None:  # they drain their own requests in flight
            http.stop(settings.server.graceful_timeout_seconds)
            os.close(fd)
        if procs is not None:
            procs.stop(settings.pipeline.shutdown_grace_seconds)
    if not server.started:
        sys.exit(1)


def _fork_http(
    settings: Settings, registry: Registry, config_path: str, fd: int, processes: int
) -> list[ForkedChild] | None:
    """HTTP processes 1 … P-1 forked from this one (``hookline.fork``): it has imported
    everything they run, and not started a thread yet. None if that is not so."""
    if not can_fork():
        return None
    serve = os.getpid()

    def http(index: int) -> None:
        child_environment(config_path, serve)
        run_http_process(settings, registry, fd=fd, index=index, supervisor_pid=serve)

    return [
        fork(f"hookline-http-{index}", functools.partial(http, index))
        for index in range(1, processes)
    ]


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


def run_http_process(
    settings: Settings, registry: Registry, *, fd: int, index: int, supervisor_pid: int | None
) -> None:
    """HTTP process ``index`` > 0 of a ``serve``: the same app on the inherited listening
    socket, without migrations, scheduler or workers (process 0 has them)."""
    app, metrics = _app(settings, registry, index)
    config = uvicorn_config(settings, app, metrics, "", 0)
    server = uvicorn.Server(config)
    sock = socket.socket(fileno=fd)
    if supervisor_pid is not None:
        threading.Thread(
            target=_stop_without_supervisor, args=(server, supervisor_pid), daemon=True
        ).start()
    with _stop_signals_absorbed(server):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(1)


def _stop_without_supervisor(server: uvicorn.Server, pid: int) -> None:
    """Stop gracefully once the ``hookline serve`` that started us is gone."""
    while os.getppid() == pid:
        time.sleep(0.5)
    log.warning("supervisor is gone; stopping", extra={"supervisor": pid})
    server.should_exit = True


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
