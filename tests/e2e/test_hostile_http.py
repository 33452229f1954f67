"""Hostile HTTP against a real ``hookline serve``: huge or endless heads, slow bodies.

Raw sockets, because a well-behaved client (httpx) cannot send a 100 MB header slowly
or stop half-way through a body. The server runs with 1-second read deadlines so the
deadline tests stay fast.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import signing
from tests.support.server import HooklineProcess, base_config

LIMITS = """[server]
header_timeout_seconds = 1
body_timeout_seconds = 1
"""


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HooklineProcess]:
    tmp = tmp_path_factory.mktemp("edge")
    config = base_config(f"sqlite:///{tmp / 'hookline.db'}").replace("[server]\n", LIMITS, 1)
    proc = HooklineProcess(tmp, config).start()
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
    logs = edge_server.logs()
    assert '"outcome":"disconnected"' in logs  # the request's task ended, its slot freed
