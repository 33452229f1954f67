"""``hookline serve``: uvicorn for HTTP, plus N worker processes beside it.

Lifecycle: start workers → run uvicorn until SIGTERM/SIGINT (uvicorn stops
accepting, finishes in-flight requests within the graceful timeout, then the
app's lifespan flushes and closes the store) → stop the workers (SIGTERM, wait
for them to drain within their grace time, then SIGKILL what is left).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time

import uvicorn

from app.config import Settings
from app.pipeline import Registry
from app.store import open_store
from app.web.app import create_app

log = logging.getLogger("hookline.serve")


def start_workers(config_path: str, count: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "HOOKLINE_CONFIG": config_path}
    return [
        subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--config", config_path],
                         env=env)
        for _ in range(count)
    ]


def stop_workers(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace + 5
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker did not stop in time; killing", extra={"pid": proc.pid})
            proc.kill()
            proc.wait()


def run_server(
    settings: Settings, registry: Registry, *, config_path: str, host: str, port: int,
    workers: int,
) -> None:
    store = open_store(settings.storage.url)
    app = create_app(settings, store, registry)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.server.graceful_timeout_seconds),
        server_header=False,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    procs: list[subprocess.Popen[bytes]] = []
    if workers > 0:
        _migrate_first(settings)  # workers must not race the schema creation
        procs = start_workers(config_path, workers)
    log.info("serving", extra={"host": host, "port": port, "workers": workers})
    try:
        server.run()
    finally:
        stop_workers(procs, settings.pipeline.shutdown_grace_seconds)
    if not server.started:
        sys.exit(1)


def _migrate_first(settings: Settings) -> None:
    import asyncio

    async def go() -> None:
        store = open_store(settings.storage.url)
        await store.open()
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(go())
