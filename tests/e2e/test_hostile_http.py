"""Hostile HTTP against a real ``hookline serve``: huge or endless heads, slow bodies.

Raw sockets, because a well-behaved client (httpx) cannot send a 100 MB header slowly
or stop half-way through a body. The server runs with 1-second read deadlines so the
deadline tests stay fast.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import signing
from tests.support.server import API_KEY, STRIPE_SECRET, HooklineProcess, base_config

LIMITS = """[server]
header_timeout_seconds = 1
body_timeout_seconds = 1
"""
MAX_BODY = 26_214_400
# A Stripe source with many secrets: a large body takes seconds to check against all.
SLOW_SOURCE = f"""
[[sources]]
name = "slow"
provider = "stripe"
secrets = [{", ".join(f'"whsec_other_{i}"' for i in range(31))}, "{STRIPE_SECRET}"]
"""


def edge_config(db: Path, limits: str = LIMITS) -> str:
    text = base_config(f"sqlite:///{db}", max_body_bytes=MAX_BODY) + SLOW_SOURCE
    return text.replace("[server]\n", limits, 1)


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HooklineProcess]:
    tmp = tmp_path_factory.mktemp("edge")
    proc = HooklineProcess(tmp, edge_config(tmp / "hookline.db")).start()
    yield proc
    proc.stop()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connect(server: HooklineProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def send_endless_header(server: HooklineProcess, total: int = 100_000_000) -> tuple[int, bytes]:
    """Send a request whose one header grows up to ``total`` bytes, stopping as soon as the
    server answers; returns (bytes sent, the answer)."""
    sock = connect(server)
    sent = 0
    chunk = b"a" * 65536
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except OSError:  # the server closed after answering
                break
            sent += len(chunk)
        return sent, read_answer(sock)
    finally:
        sock.close()


def test_a_100_mb_header_is_431_after_the_cap_and_never_buffered(
    edge_server: HooklineProcess,
) -> None:
    assert edge_server.proc is not None
    before = rss_kib(edge_server.proc.pid)
    sent, answer = send_endless_header(edge_server)
    assert status_of(answer) == 431
    assert b'"headers_too_large"' in answer
    assert sent < 8_000_000, "the server read on long after the cap"
    assert rss_kib(edge_server.proc.pid) - before < 32_768  # KiB; the probe saw +200 MB


def test_huge_headers_at_once_do_not_stall_signed_acks(edge_server: HooklineProcess) -> None:
    assert edge_server.proc is not None
    before = rss_kib(edge_server.proc.pid)
    answers: list[tuple[int, bytes]] = []
    senders = [
        threading.Thread(target=lambda: answers.append(send_endless_header(edge_server)))
        for _ in range(4)
    ]
    for thread in senders:
        thread.start()
    acked = 0
    with httpx.Client(base_url=edge_server.url, timeout=30) as client:
        for _ in range(20):
            body, headers = signing.stripe()
            response = client.post("/webhooks/stripe", content=body, headers=headers)
            assert response.status_code == 200, response.text
            acked += 1
    for thread in senders:
        thread.join(timeout=60)
    assert acked == 20
    assert [status_of(answer) for _, answer in answers] == [431] * 4
    assert all(sent < 8_000_000 for sent, _ in answers)
    assert rss_kib(edge_server.proc.pid) - before < 65_536  # KiB; the probe saw 608 MB


def test_more_than_100_headers_is_431(edge_server: HooklineProcess) -> None:
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(101))
    with connect(edge_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = read_answer(sock)
    assert status_of(answer) == 431
    assert b'"too_many_headers"' in answer
    metrics = httpx.get(f"{edge_server.url}/metrics", timeout=10).text
    assert 'hookline_http_refused_total{reason="too_many_headers"} 1.0' in metrics


def test_a_malformed_request_is_a_json_400(edge_server: HooklineProcess) -> None:
    # an unknown transfer coding: the parser refuses it (uvicorn would answer text/plain)
    with connect(edge_server) as sock:
        sock.sendall(
            b"POST /jobs/report HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: redacted\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        answer = read_answer(sock)
    assert status_of(answer) == 400
    assert b"content-type: application/json" in answer.lower()
    assert b'"invalid_request"' in answer


def test_100_headers_are_fine(edge_server: HooklineProcess) -> None:
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(98))  # + Host, Connection = 100
    with connect(edge_server) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n"
        )
        answer = read_answer(sock)
    assert status_of(answer) == 200, answer


def test_a_head_never_finished_is_408_and_closed(edge_server: HooklineProcess) -> None:
    with connect(edge_server) as sock:
        sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        answer = read_answer(sock)  # returns only because the server closed
    assert status_of(answer) == 408
    assert b'"header_timeout"' in answer


def test_a_connection_that_sends_nothing_is_closed(edge_server: HooklineProcess) -> None:
    with connect(edge_server) as sock:
        assert read_answer(sock) == b""


def test_a_body_never_finished_is_408_closed_and_its_request_ended(
    edge_server: HooklineProcess,
) -> None:
    body, headers = signing.stripe()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with connect(edge_server) as sock:
        sock.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
            + head.encode()
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body[:10]
        )
        answer = read_answer(sock)
    assert status_of(answer) == 408
    assert b'"body_timeout"' in answer
    # the request's task ended, its slot freed: it logs that after the 408 went out
    deadline = time.monotonic() + 10
    while '"outcome":"disconnected"' not in (logs := edge_server.logs()):
        assert time.monotonic() < deadline, logs[-2000:]
        time.sleep(0.05)


def head_of(path: str, headers: dict[str, str], length: int) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\n{lines}Content-Length: {length}\r\n\r\n").encode()


MISSING_HEADERS = [
    ("stripe", {}, "invalid_signature"),
    ("github", {"X-GitHub-Delivery": "d-1", "X-GitHub-Event": "push"}, "invalid_signature"),
    ("github", {"X-Hub-Signature-256": "sha256=" + "0" * 64}, "invalid_payload"),
    ("acme", {"webhook-id": "msg_1", "webhook-timestamp": "1"}, "invalid_signature"),
    ("slack", {"X-Slack-Signature": "v0=" + "0" * 64}, "invalid_signature"),
    ("shopify", {"X-Shopify-Topic": "orders/create"}, "invalid_signature"),
]


@pytest.mark.parametrize(("source", "headers", "code"), MISSING_HEADERS)
def test_missing_provider_headers_are_400_before_the_body_is_read(
    edge_server: HooklineProcess, source: str, headers: dict[str, str], code: str
) -> None:
    # 25 MB announced, a few bytes sent: only a refusal made from the headers can answer
    # (else the read deadline would, with 408).
    with connect(edge_server) as sock:
        sock.sendall(head_of(f"/webhooks/{source}", headers, 25_000_000) + b'{"id": ')
        answer = read_answer(sock)
    assert status_of(answer) == 400, answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == code


@pytest.mark.parametrize("source", ["stripe", "acme", "slack"])
def test_a_stale_signed_timestamp_is_400_before_the_body_is_read(
    edge_server: HooklineProcess, source: str
) -> None:
    signer = {"stripe": signing.stripe, "acme": signing.standard, "slack": signing.slack}[source]
    _, headers = signer({"id": "evt_1", "type": "x"}, now=time.time() - 3600)
    with connect(edge_server) as sock:
        sock.sendall(head_of(f"/webhooks/{source}", headers, 25_000_000) + b"{")
        answer = read_answer(sock)
    assert status_of(answer) == 400, answer
    assert b'"stale_timestamp"' in answer


def _queues(port: int, client_port: int) -> tuple[int, int]:
    """(bytes the client has not got acked, bytes the server has not read) on loopback."""
    tx = rx = -1
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        tx_queue, rx_queue = (int(q, 16) for q in queues.split(":"))
        if local.endswith(f":{port:04X}") and remote.endswith(f":{client_port:04X}"):
            rx = rx_queue
        if local.endswith(f":{client_port:04X}") and remote.endswith(f":{port:04X}"):
            tx = tx_queue
    return tx, rx


def wait_until_read(server: HooklineProcess, sock: socket.socket) -> None:
    """Until the server process has read every byte sent on ``sock`` (a bounded wait)."""
    client_port = sock.getsockname()[1]
    for _ in range(10_000):
        if _queues(server.port, client_port) == (0, 0):
            return
        time.sleep(0.001)
    raise AssertionError("the server never read what was sent")


def test_a_small_ack_is_answered_while_a_big_body_is_being_verified(
    edge_server: HooklineProcess,
) -> None:
    """A 16 MB body checked against 32 secrets keeps a verifier busy for a long while; a
    small signed webhook sent once the server has read all of it must not wait for that."""
    big = json.dumps({"id": "evt_big", "type": "x", "pad": "a" * 16_000_000}).encode()
    _, wrong = signing.stripe(b"not this body")  # valid shape, signature will not match
    small_body, small_headers = signing.stripe()
    with connect(edge_server) as big_sock, connect(edge_server) as small_sock:
        big_sock.sendall(head_of("/webhooks/slow", wrong, len(big)) + big)
        wait_until_read(edge_server, big_sock)
        small_sock.sendall(head_of("/webhooks/stripe", small_headers, len(small_body)) + small_body)
        ready, _, _ = select.select([big_sock, small_sock], [], [], 60)
        assert ready == [small_sock], "the small ack waited for the big verification"
        assert status_of(small_sock.recv(65536)) == 200
        big_sock.settimeout(60)
        assert status_of(big_sock.recv(65536)) == 400


def overload_server(tmp: Path, limits: str) -> HooklineProcess:
    return HooklineProcess(tmp, edge_config(tmp / "hookline.db", limits)).start()


def test_requests_beyond_max_in_flight_get_503_and_the_slots_come_back(tmp_path: Path) -> None:
    server = overload_server(tmp_path, "[server]\nmax_in_flight = 2\nbody_timeout_seconds = 2\n")
    try:
        body, headers = signing.stripe()
        slow = [connect(server) for _ in range(2)]
        for sock in slow:  # two requests whose bodies never end hold both slots
            sock.sendall(head_of("/webhooks/stripe", headers, len(body)) + body[:5])
            wait_until_read(server, sock)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(100):
                refused = client.post("/webhooks/stripe", content=body, headers=headers)
                if refused.status_code == 503:
                    break
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "overloaded"
            assert refused.headers["retry-after"] == "1"
            assert client.get("/healthz").status_code == 200  # liveness is never refused
            for sock in slow:  # their deadline passes: 408, slots freed
                assert status_of(read_answer(sock)) == 408
                sock.close()
            accepted = client.post("/webhooks/stripe", content=body, headers=headers)
            assert accepted.status_code == 200, accepted.text
    finally:
        server.stop()


def refused_while_held(
    server: HooklineProcess, path: str, headers: dict[str, str], post: Callable[[], httpx.Response]
) -> httpx.Response:
    """``post()`` until refused while a client holds 900 kB of a body to ``path`` in memory
    and never finishes it; then the hog's read deadline (408) frees its bytes."""
    with connect(server) as hog:
        hog.sendall(head_of(path, headers, 2_000_000) + b"a" * 900_000)
        wait_until_read(server, hog)
        for _ in range(100):
            refused = post()
            if refused.status_code == 503:
                break
        assert status_of(read_answer(hog)) == 408
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "overloaded"
    assert refused.headers["retry-after"] == "1"
    return refused


BUDGET_LIMITS = "[server]\nmax_buffered_bytes = 1000000\nbody_timeout_seconds = 5\n"
BIG_EVENT = json.dumps({"id": "evt_1", "type": "x", "pad": "a" * 300_000}).encode()


def test_bodies_beyond_max_buffered_bytes_get_503_not_memory(tmp_path: Path) -> None:
    server = overload_server(tmp_path, BUDGET_LIMITS)
    try:
        big_headers = signing.stripe(BIG_EVENT)[1]
        with httpx.Client(base_url=server.url, timeout=30) as client:

            def post() -> httpx.Response:
                return client.post("/webhooks/stripe", content=BIG_EVENT, headers=big_headers)

            refused_while_held(server, "/webhooks/stripe", signing.stripe()[1], post)
            accepted = post()
            assert accepted.status_code == 200, accepted.text
    finally:
        server.stop()


def test_job_bodies_share_the_buffer_budget_with_webhooks(tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path / 'hookline.db'}",
        max_body_bytes=MAX_BODY,
        handlers=["tests.e2e.job_handlers"],
    ).replace("[server]\n", BUDGET_LIMITS, 1)
    server = HooklineProcess(tmp_path, config).start()
    auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    big_job = json.dumps({"pad": "a" * 300_000}).encode()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:

            def webhook() -> httpx.Response:
                headers = signing.stripe(BIG_EVENT)[1]
                return client.post("/webhooks/stripe", content=BIG_EVENT, headers=headers)

            def job() -> httpx.Response:
                return client.post("/jobs/echo", content=big_job, headers=auth)

            # a job body held unfinished counts against the webhooks' budget, and back
            refused_while_held(server, "/jobs/echo", auth, webhook)
            refused_while_held(server, "/webhooks/stripe", signing.stripe()[1], job)
            accepted = job()
            assert accepted.status_code == 202, accepted.text  # the budget came back
    finally:
        server.stop()


def test_connections_beyond_max_connections_get_503_and_are_closed(tmp_path: Path) -> None:
    server = overload_server(tmp_path, "[server]\nmax_connections = 3\n")
    try:
        held = [connect(server) for _ in range(6)]  # idle: only the cap answers them
        answered: dict[socket.socket, bytes] = {}
        while len(answered) < 2:  # at least 6 - 3 - 1 (the readiness probe's, if still open)
            ready, _, _ = select.select([s for s in held if s not in answered], [], [], 30)
            assert ready, "no connection was turned away"
            for sock in ready:
                answered[sock] = read_answer(sock)
        for answer in answered.values():
            assert status_of(answer) == 503
            assert b'"overloaded"' in answer
            assert b"retry-after: 1" in answer.lower()
        assert len(answered) <= 3  # the first 3 were let in and are still waiting
        for sock in held:
            sock.close()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(50):  # the server notices the closed ones and has room again
                if client.get("/healthz").status_code == 200:
                    break
            else:
                raise AssertionError("no room after the connections closed")
    finally:
        server.stop()
