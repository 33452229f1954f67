"""An acknowledged webhook is on disk (SPEC §3 ingestion, item 4).

A real server on a real SQLite file is killed with SIGKILL (no flush, no
shutdown code runs) or stopped with SIGTERM while requests are in flight; after
a restart on the same file every event that got a 200 must be there. (The
``server`` fixture stops whichever process is running at the end.)
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path

import httpx

from tests.support import signing
from tests.support.server import HooklineProcess, base_config

PARALLEL = 16
SOURCES = ("stripe", "github", "acme", "shopify")

Ack = tuple[str, str, str]  # (source, provider event id, hookline id)


def _request(number: int) -> tuple[str, signing.Signed]:
    source = SOURCES[number % len(SOURCES)]
    return source, signing.SIGNERS[source]()


def _ack(client: httpx.Client, number: int) -> Ack:
    source, (body, headers) = _request(number)
    response = client.post(f"/webhooks/{source}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["duplicate"] is False
    return source, answer["eventId"], answer["id"]


def _client(server: HooklineProcess) -> httpx.Client:
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    return httpx.Client(base_url=server.url, timeout=15, limits=limits)


def _stored(server: HooklineProcess) -> set[Ack]:
    with server.admin() as admin:
        return {(e["source"], e["eventId"], e["id"]) for e in signing.list_events(admin)}


def test_every_acked_event_survives_kill_9(server: HooklineProcess) -> None:
    with _client(server) as client, ThreadPoolExecutor(PARALLEL) as pool:
        acked = list(pool.map(lambda n: _ack(client, n), range(300)))
        server.kill9()  # right after the last ack: nothing gets a chance to flush

    assert len(set(acked)) == 300
    server.start()
    assert _stored(server) == set(acked)


class _Senders:
    """``PARALLEL`` threads posting fresh events until the server goes away."""

    def __init__(self, server: HooklineProcess) -> None:
        self.acked: list[Ack] = []
        self.refusals: list[int] = []
        self._numbers = count()
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._client = _client(server)
        self._threads = [threading.Thread(target=self._run) for _ in range(PARALLEL)]

    def _run(self) -> None:
        while True:
            with self._lock:
                number = next(self._numbers)
            source, (body, headers) = _request(number)
            try:
                response = self._client.post(f"/webhooks/{source}", content=body, headers=headers)
            except httpx.TransportError:
                return  # the server is gone (killed, or no longer accepting)
            with self._progress:
                if response.status_code != 200:
                    self.refusals.append(response.status_code)
                    return
                answer = response.json()
                self.acked.append((source, answer["eventId"], answer["id"]))
                self._progress.notify_all()

    def __enter__(self) -> _Senders:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, acks: int) -> None:
        with self._progress:
            assert self._progress.wait_for(lambda: len(self.acked) >= acks, timeout=60)

    def __exit__(self, *exc: object) -> None:
        for thread in self._threads:
            thread.join(timeout=60)
        self._client.close()


def _interrupted_while_sending(
    server: HooklineProcess, interrupt: Callable[[], None]
) -> tuple[list[Ack], list[int]]:
    with _Senders(server) as senders:
        senders.wait_for(200)
        interrupt()  # the other senders are still mid-request
    return senders.acked, senders.refusals


def test_acks_survive_kill_9_in_the_middle_of_a_burst(server: HooklineProcess) -> None:
    acked, refusals = _interrupted_while_sending(server, server.kill9)
    assert refusals == []
    server.start()
    stored = _stored(server)
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged events were lost"


def test_sigterm_drains_in_flight_requests_and_exits_0(server: HooklineProcess) -> None:
    status: list[int] = []
    acked, refusals = _interrupted_while_sending(
        server, lambda: status.append(server.terminate(timeout=30))
    )
    assert status == [0], server.logs()[-2000:]
    assert set(refusals) <= {503}, refusals  # shutting down may refuse, never fail
    server.start()
    stored = _stored(server)
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged events were lost"


def test_no_ack_into_a_database_file_deleted_or_replaced_while_serving(
    server: HooklineProcess,
) -> None:
    """An open SQLite file that was deleted (or replaced by a copy) takes commits that vanish
    with it: such a webhook must get a 503 (the provider retries), and /readyz says why."""
    db = server.workdir / "hookline.db"
    with _client(server) as client:
        _ack(client, 0)
        copy = db.read_bytes()
        for suffix in ("", "-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        source, (body, headers) = _request(1)
        answer = client.post(f"/webhooks/{source}", content=body, headers=headers)
        assert answer.status_code == 503, answer.text
        assert client.get("/readyz").status_code == 503
        assert "was deleted or replaced while hookline ran" in server.logs()
        db.write_bytes(copy)  # a restore under the running server: another file still
        answer = client.post(f"/webhooks/{source}", content=body, headers=headers)
        assert answer.status_code == 503, answer.text
        assert client.get("/readyz").status_code == 503


def test_a_body_still_arriving_when_the_grace_time_ends_gets_a_503(
    tmp_path: Path, sqlite_url: str
) -> None:
    """uvicorn cancels what still runs when graceful_timeout_seconds is over; a webhook
    whose body was still arriving got its text/plain 500 (a 5xx the SPEC forbids). A JSON
    503 with Retry-After tells the provider to retry, and nothing is stored."""
    config = base_config(sqlite_url).replace(
        "graceful_timeout_seconds = 5", "graceful_timeout_seconds = 1"
    )
    server = HooklineProcess(tmp_path, config).start()
    try:
        body, headers = signing.stripe()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(
                f"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:5]
            )
            time.sleep(0.3)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            answer = sock.recv(65536)
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 503 Service Unavailable", answer
        assert b"retry-after: 1" in rest.lower()
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "shutting_down"
        assert server.proc.wait(timeout=30) == 0
    finally:
        server.stop()
