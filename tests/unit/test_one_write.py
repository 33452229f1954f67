"""A response's head and body leave in one write (hookline.web.one_write), through the
real httptools protocol with hookline's limits; the transport records what it is given."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from hookline.web.protocol import ProtocolLimits, bounded_protocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def _length_app(body: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _streaming_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _exchange(app: Any, request: bytes) -> RecordingTransport:
    limits = ProtocolLimits(
        max_header_bytes=8192,
        max_headers=50,
        header_timeout=5,
        body_timeout=5,
        max_connections=10,
    )
    protocol_class = bounded_protocol(limits)
    config = uvicorn.Config(app, http=protocol_class, lifespan="off", log_config=None)
    config.load()
    loop = asyncio.get_running_loop()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(50):
        if protocol.cycle is not None and protocol.cycle.response_complete:
            break
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


POST = b"POST /webhooks/x HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi"


@pytest.mark.asyncio
async def test_a_response_with_a_length_is_one_write_head_then_body() -> None:
    transport = await _exchange(_length_app(b'{"ok":true}'), POST)
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 11" in head
    assert body == b'{"ok":true}'


@pytest.mark.asyncio
async def test_two_requests_on_one_connection_are_a_write_each() -> None:
    transport = await _exchange(_length_app(b"12345"), POST + POST)
    assert [w.endswith(b"\r\n\r\n12345") for w in transport.writes] == [True, True]


@pytest.mark.asyncio
async def test_a_stream_writes_its_head_before_the_first_chunk() -> None:
    transport = await _exchange(_streaming_app, POST)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert transport.writes[1:] == [b"5\r\nfirst\r\n", b"0\r\n\r\n"]


@pytest.mark.asyncio
async def test_a_head_request_is_answered_with_its_head_alone() -> None:
    request = b"HEAD /x HTTP/1.1\r\nhost: a\r\n\r\n"
    transport = await _exchange(_length_app(b"12345"), request)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"content-length: 5\r\n\r\n")
    assert b"".join(transport.writes[1:]) == b""
