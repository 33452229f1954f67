"""Load generation shared by the pipeline benches (``ack_isolation``, ``pipeline_e2e``).

* ``stripe_requests``: pre-built, pre-signed raw HTTP/1.1 requests of Stripe events
  (a real captured payload from ``fixtures/stripe`` with a fresh id and the given
  type), so signing costs nothing while the clock runs.
* ``open_loop``: a constant-rate generator that is safe from coordinated omission:
  request *i* is due at ``start + i / rate`` whatever happened to earlier ones (a
  new keep-alive connection is opened when none is idle), and its latency is taken
  from that scheduled time, not from when it could actually be sent.
* ``closed_loop``: N keep-alive connections posting as fast as answers come back,
  to push a fixed number of events through as quickly as possible.

Only loopback is used; responses are parsed just enough (status line and
Content-Length) to keep connections reusable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hookline.providers.stripe import StripeProvider

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # a bench that put only bench/ on the path
    sys.path.insert(0, str(ROOT))

from tests.support.procs import children as children  # noqa: E402  (the benches' import)
from tests.support.procs import stat_fields  # noqa: E402

REQUEST_TIMEOUT = 30.0  # seconds; a request still unanswered then counts as an error
TEMPLATE = ROOT / "fixtures" / "stripe" / "payment_intent.succeeded.json"


def exit_on_sigterm() -> None:
    """Turn SIGTERM (e.g. from ``timeout``) into SystemExit, so the benches' cleanup runs."""
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(128 + signal.SIGTERM))


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = stat_fields(f"/proc/{pid}/stat")
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def thread_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds of every thread of ``pid``, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = stat_fields(task / "stat")
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def add_worker_sched_idle_option(parser: argparse.ArgumentParser) -> None:
    """``--worker-sched-idle true|false``: ``[pipeline] worker_sched_idle`` for the run."""
    parser.add_argument(
        "--worker-sched-idle",
        choices=("true", "false"),
        default=None,
        help="[pipeline] worker_sched_idle for this run (default: hookline's default)",
    )


def worker_sched_idle_setting(choice: str | None) -> dict[str, bool]:
    """The ``[pipeline]`` key that ``--worker-sched-idle`` asks for; none for the default."""
    return {} if choice is None else {"worker_sched_idle": choice == "true"}


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    return round(os.getloadavg()[0], 2)


def stripe_requests(
    secret: str,
    event_type: str,
    count: int,
    host: str,
    port: int,
    prefix: str,
    path: str = "/webhooks/stripe",
) -> list[bytes]:
    """``count`` raw requests, each a distinct Stripe event signed with ``secret`` now."""
    template = json.loads(json.loads(TEMPLATE.read_text())["body"])
    signer = StripeProvider([secret])
    now = time.time()
    out = []
    for i in range(count):
        template["id"] = f"evt_{prefix}_{i:07d}"
        template["type"] = event_type
        body = json.dumps(template, indent=2).encode()
        headers = signer.sign(body, now)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            f"Stripe-Signature: {headers['Stripe-Signature']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, from the scheduled time
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    started: float = 0.0
    finished: float = 0.0
    max_lag: float = 0.0  # how late the generator itself was at worst

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def percentile(values: Iterable[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    k = min(len(data) - 1, max(0, round(q / 100 * len(data) + 0.5) - 1))
    return data[k]


class _Pool:
    def __init__(self, host: str, port: int, result: Result) -> None:
        self._host, self._port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []
        self._result = result

    async def get(self, fresh: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle and not fresh:
            reader, writer = self._idle.pop()  # most recently used first
            if not reader.at_eof():
                return reader, writer
            writer.close()
        reader, writer = await asyncio.open_connection(self._host, self._port)
        self._all.append(writer)
        self._result.connections += 1
        return reader, writer

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self._idle.append(conn)

    async def warm(self, n: int) -> None:
        conns = [await self.get() for _ in range(n)]
        for conn in conns:
            self.put(conn)

    async def close(self) -> None:
        for writer in self._all:
            writer.close()
        for writer in self._all:
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def _send(pool: _Pool, request: bytes) -> int:
    """One request; a keep-alive connection the server closed meanwhile is replaced once."""
    for attempt in (1, 2):
        reader, writer = conn = await pool.get(fresh=attempt == 2)
        try:
            writer.write(request)
            status = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT)
        except asyncio.IncompleteReadError as exc:
            writer.close()
            if attempt == 1 and not exc.partial:  # closed while idle (keep-alive timeout)
                continue
            raise
        except (TimeoutError, OSError):
            writer.close()
            raise
        pool.put(conn)
        return status
    raise AssertionError("unreachable")


async def _one(pool: _Pool, request: bytes, due: float, result: Result, record: bool) -> None:
    try:
        status = await _send(pool, request)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        result.errors += 1
        kind = type(exc).__name__
        result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
        return
    done = time.perf_counter()
    if record:
        result.latencies.append(done - due)
        result.count(status)


async def open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    rate: float,
    warmup: int = 0,
    connections: int = 32,
) -> Result:
    """Send ``requests`` at ``rate``/s; the first ``warmup`` are sent but not recorded."""
    result = Result()
    pool = _Pool(host, port, result)
    await pool.warm(connections)
    tasks: set[asyncio.Task[None]] = set()
    interval = 1.0 / rate
    start = time.perf_counter() + 0.05
    result.started = start
    for i, request in enumerate(requests):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_lag = max(result.max_lag, -delay)
        task = asyncio.create_task(_one(pool, request, due, result, record=i >= warmup))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    result.finished = time.perf_counter()
    await pool.close()
    return result


async def closed_loop(host: str, port: int, requests: list[bytes], concurrency: int) -> Result:
    """Post every request once over ``concurrency`` keep-alive connections."""
    result = Result()
    pool = _Pool(host, port, result)
    await pool.warm(concurrency)
    queue = list(reversed(requests))

    async def lane() -> None:
        while queue:
            request = queue.pop()
            await _one(pool, request, time.perf_counter(), result, record=True)

    result.started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    result.finished = time.perf_counter()
    await pool.close()
    return result
