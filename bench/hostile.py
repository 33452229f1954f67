"""Hostile traffic: do valid webhooks keep being acked, fast and durably, under attack?

Starts ``hookline serve --workers 2`` on SQLite (no handlers: the workers idle), then
offers signed Stripe webhooks at ``--rate``/s (open loop, latency from each request's
scheduled send time) in two phases on the same server:

* **idle**: nothing else;
* **hostile**: meanwhile, from a second process, ``--loris`` slow-loris connections (four
  in five trickle a request head one byte at a time, one in five a signed-looking body)
  reconnecting whenever the server cuts them, and a flood of ``--flood`` requests/s with
  a missing or a wrong signature over keep-alive connections.

Prints valid-ack p50/p99 per phase (target: hostile p99 within 2x of idle p99), the
answers the attackers got, peak RSS and open fds of every hookline process (sampled
every 0.2 s), and how many acked events are found in the database afterwards (must be
all of them).

    .venv/bin/python bench/hostile.py [--rate 200] [--seconds 15] [--loris 500] [--flood 300]

Loopback only, bounded in count and time; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import children, load_average, open_loop, percentile, stripe_requests  # noqa: E402

from tests.support.server import STRIPE_SECRET, HooklineProcess, base_config  # noqa: E402

HOST = "127.0.0.1"


# -- the attacker (its own process, so its CPU is not the prober's) --------------------
async def _loris(port: int, until: float, body: bool, answers: dict[str, int]) -> None:
    """One slow client: a byte at a time, reconnecting whenever the server hangs up."""
    await asyncio.sleep(random.uniform(0, 2))  # a crowd, not one burst
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            answers["connect_failed"] = answers.get("connect_failed", 0) + 1
            await asyncio.sleep(0.5)
            continue
        if body:
            stamp = int(time.time())
            head = (
                "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
                f"Stripe-Signature: t={stamp},v1={'0' * 64}\r\n"
                "Content-Length: 100000\r\n\r\n"
            ).encode()
            writer.write(head)
            trickle = b"{" * 100_000
        else:
            trickle = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100_000
        answer = asyncio.ensure_future(reader.read(200))
        try:
            for byte in trickle:
                if time.monotonic() >= until or answer.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.wait([answer], timeout=random.uniform(1, 3))
            got = await asyncio.wait_for(answer, 0.5)
            key = got[9:12].decode() if got.startswith(b"HTTP/1.1 ") else "closed"
        except (OSError, TimeoutError):
            key = "cut"
        answers[f"loris_{key}"] = answers.get(f"loris_{key}", 0) + 1
        writer.close()


async def _flood(port: int, until: float, rate: float, answers: dict[str, int]) -> None:
    """Invalid requests at ``rate``/s over a few keep-alive connections."""
    body = json.dumps({"id": "evt_forged", "type": "invoice.paid", "pad": "x" * 2000}).encode()
    stamp = int(time.time())
    forged = (
        "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
        f"Stripe-Signature: t={stamp},v1={'ab' * 32}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    unsigned = (
        f"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    lanes = 8
    interval = lanes / rate

    async def lane(index: int) -> None:
        reader = writer = None
        sent = 0
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                assert reader is not None
                writer.write(forged if (sent + index) % 2 else unsigned)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                key = f"flood_{head[9:12].decode()}"
                if b"connection: close" in head.lower():
                    writer.close()
                    writer = None
            except (OSError, TimeoutError, asyncio.IncompleteReadError, IndexError, ValueError):
                key = "flood_error"
                if writer is not None:
                    writer.close()
                writer = None
            answers[key] = answers.get(key, 0) + 1
            sent += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    await asyncio.gather(*(lane(i) for i in range(lanes)))


def attacker(port: int, seconds: float, loris: int, flood: float, out: Any) -> None:
    async def main() -> dict[str, int]:
        answers: dict[str, int] = {}
        until = time.monotonic() + seconds
        slow = [_loris(port, until, i % 5 == 0, answers) for i in range(loris)]
        await asyncio.gather(_flood(port, until, flood, answers), *slow)
        return answers

    out.put(uvloop.run(main()))


# -- measuring ---------------------------------------------------------------------------
class Sampler:
    """Peak RSS and open fds of the server and every child, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss: dict[str, int] = {}
        self.peak_fds: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for index, pid in enumerate([self.pid, *children(self.pid)]):
                name = "serve" if index == 0 else f"worker-{index}"
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    fds = len(os.listdir(f"/proc/{pid}/fd"))
                except OSError:
                    continue
                rss = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
                self.peak_fds[name] = max(self.peak_fds.get(name, 0), fds)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def phase(port: int, rate: float, seconds: float, prefix: str) -> tuple[Any, list[str]]:
    count = int(rate * seconds)
    requests = stripe_requests(STRIPE_SECRET, "invoice.paid", count, HOST, port, prefix)
    ids = [f"evt_{prefix}_{i:07d}" for i in range(count)]
    result = uvloop.run(open_loop(HOST, port, requests, rate, warmup=0, connections=32))
    return result, ids


def summary(name: str, result: Any) -> dict[str, Any]:
    ms = [x * 1000 for x in result.latencies]
    return {
        "phase": name,
        "sent": len(ms) + result.errors,
        "statuses": result.statuses,
        "errors": result.errors,
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--loris", type=int, default=500)
    parser.add_argument("--flood", type=float, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hookline-hostile-") as tmp:
        db = Path(tmp) / "hookline.db"
        config = base_config(f"sqlite:///{db}", workers=2)
        server = HooklineProcess(Path(tmp), config).start()
        assert server.proc is not None
        sampler = Sampler(server.proc.pid)
        try:
            time.sleep(2)  # the workers' start-up is not part of either phase
            warm, warm_ids = phase(server.port, args.rate, 2, "warm")
            cpu = [cpu_seconds(server.proc.pid)]
            idle, idle_ids = phase(server.port, args.rate, args.seconds, "idle")
            cpu.append(cpu_seconds(server.proc.pid))
            out: Any = multiprocessing.get_context("spawn").Queue()
            attack = multiprocessing.get_context("spawn").Process(
                target=attacker,
                args=(server.port, args.seconds + 4, args.loris, args.flood, out),
            )
            attack.start()
            time.sleep(3)  # let the slow-loris crowd connect first
            cpu.append(cpu_seconds(server.proc.pid))
            hostile, hostile_ids = phase(server.port, args.rate, args.seconds, "hostile")
            cpu.append(cpu_seconds(server.proc.pid))
            answers = out.get(timeout=120)
            attack.join(timeout=30)
        finally:
            sampler.stop()
            server.stop()
        acked = sum(r.statuses.get(200, 0) for r in (warm, idle, hostile))
        valid = set(warm_ids + idle_ids + hostile_ids)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            found = {
                row[0]
                for row in conn.execute(
                    "SELECT provider_event_id FROM events WHERE source = 'stripe'"
                )
            }
        report = {
            "phases": [summary("idle", idle), summary("hostile", hostile)],
            "p99_ratio": round(
                percentile(hostile.latencies, 99) / percentile(idle.latencies, 99), 2
            ),
            "attacker_answers": dict(sorted(answers.items())),
            "valid_acked": acked,
            "valid_found": len(found & valid),
            "forged_found": len(found - valid),
            "serve_cpu_seconds": {
                "idle": round(cpu[1] - cpu[0], 2),
                "hostile": round(cpu[3] - cpu[2], 2),
            },
            "peak_rss_kib": sampler.peak_rss,
            "peak_fds": sampler.peak_fds,
            "load_average_1m": load_average(),
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
