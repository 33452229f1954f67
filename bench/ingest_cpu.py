"""CPU per webhook of one HTTP process's ingest path, in process: steady on a busy machine.

The throughput benches (``bench/ingest.py``) need a quiet machine: a neighbour's load moves
their figures by ±30 %. This one drives the real request path — hookline's httptools
protocol with its limits, the ASGI app with its middleware, the Stripe signature check,
the SQLite store's group-commit writer with its fsync, the log line and the counters —
with signed ~2.6 KB Stripe events over 32 in-memory connections (one request each in
flight, like wrk's closed loop), and reports the process's CPU time (every thread) per
webhook. No sockets: the kernel's part of reading and writing them is not in the figure,
so compare trees with this, and machines with ``bench/ingest.py``.

    .venv/bin/python bench/ingest_cpu.py [--events 20000] [--rounds 3] [--profile OUT]

``--profile`` writes a cProfile of the last round (``python -m pstats OUT``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvloop
from uvicorn.lifespan.on import LifespanOn
from uvicorn.server import ServerState

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import stripe_requests, thread_cpu  # noqa: E402

from hookline.config import load_settings  # noqa: E402
from hookline.logs import configure_logging  # noqa: E402
from hookline.pipeline import Registry  # noqa: E402
from hookline.serve import _app, uvicorn_config  # noqa: E402
from tests.support.server import STRIPE_SECRET, base_config  # noqa: E402

CONNECTIONS = 32
WARMUP = 500


def _threads_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads by name (the event loop is MainThread)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid, seconds in thread_cpu(os.getpid()).items():
        name = names.get(tid, "other")
        out[name] = out.get(name, 0.0) + seconds
    return out


class Transport(asyncio.Transport):
    """The connection's far end: keeps nothing, says when an answer was written."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = asyncio.Event()
        self.statuses: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        peers = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}
        return peers.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if data.startswith(b"HTTP/1.1 "):
            self.statuses.append(data[9:12])
        if data.endswith(b"}"):  # the end of the JSON answer (with its head or after it)
            self.answered.set()

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _serve(requests: list[bytes], connections: list[tuple[Any, Transport]]) -> None:
    """Every request answered, ``len(connections)`` in flight at a time."""
    sent = 0
    while sent < len(requests):
        busy = []
        for protocol, transport in connections:
            if sent == len(requests):
                break
            protocol.data_received(requests[sent])
            sent += 1
            busy.append(transport)
        for transport in busy:
            await transport.answered.wait()
            transport.answered.clear()


async def measure(
    db_dir: Path, events: int, rounds: int, profile: Path | None
) -> tuple[list[float], dict[str, float]]:
    config_path = db_dir / "hookline.toml"
    config_path.write_text(base_config(f"sqlite:///{db_dir / 'h.db'}"))
    settings = load_settings(config_path)
    app, metrics = _app(settings, Registry(), 0)
    config = uvicorn_config(settings, app, metrics, "127.0.0.1", 0)
    config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(CONNECTIONS):
        protocol = config.http_protocol_class(
            config=config, server_state=ServerState(), app_state={}, _loop=loop
        )
        transport = Transport()
        protocol.connection_made(transport)
        connections.append((protocol, transport))
    figures = []
    by_thread: dict[str, float] = {}
    try:
        for round_ in range(rounds):
            batch = stripe_requests(
                STRIPE_SECRET, "invoice.paid", WARMUP + events, "127.0.0.1", 8000, f"r{round_}"
            )
            await _serve(batch[:WARMUP], connections)
            profiler = cProfile.Profile() if profile and round_ == rounds - 1 else None
            if profiler:
                profiler.enable()
            started, threads_before = time.process_time(), _threads_cpu()
            await _serve(batch[WARMUP:], connections)
            figures.append((time.process_time() - started) / events * 1e6)
            for name, seconds in _threads_cpu().items():
                used = (seconds - threads_before.get(name, 0.0)) / events * 1e6 / rounds
                by_thread[name] = by_thread.get(name, 0.0) + used
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)  # type: ignore[arg-type]
    finally:
        await lifespan.shutdown()
    statuses = {s for _, t in connections for s in t.statuses}
    if statuses != {b"200"}:
        raise SystemExit(f"answers other than 200: {statuses}")
    return figures, by_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    configure_logging()
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]
    uvloop.install()
    with tempfile.TemporaryDirectory() as tmp:
        figures, by_thread = asyncio.run(measure(Path(tmp), args.events, args.rounds, args.profile))
    rounds = "  ".join(f"{f:.1f}" for f in figures)
    print(f"CPU µs per webhook (every thread), rounds: {rounds}")
    threads = "  ".join(f"{name} {us:.0f}" for name, us in sorted(by_thread.items()) if us >= 1)
    print(f"by thread (mean, clock ticks of 10 ms): {threads}")
    print(f"median {statistics.median(figures):.1f} µs  (load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
