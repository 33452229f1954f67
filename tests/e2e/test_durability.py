"""An acknowledged webhook is on disk (SPEC §3 ingestion, item 4).

A real server on a real SQLite file is killed with SIGKILL (no flush, no
shutdown code runs) or stopped with SIGTERM while requests are in flight; after
a restart on the same file every event that got a 200 must be there. (The
``server`` fixture stops whichever process is running at the end.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import count

import httpx

from tests.support import signing
from tests.support.server import HooklineProcess

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
