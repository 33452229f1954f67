"""A response's head and its body in one ``transport.write``.

uvicorn writes the status line and headers as soon as the app sends
``http.response.start``, and the body on ``http.response.body``: two system calls and,
on a fast loopback, two segments the client reads apart. Every webhook and job answer is
a small body with a ``content-length``, so the head waits for the body's first write and
both leave in one call. A response without a length (chunked: a stream, whose head the
client must see before the first chunk) and a ``HEAD`` or empty response are written as
uvicorn writes them.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class _Held:
    """Stands in for the transport while uvicorn writes a head: keeps the bytes."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class _Prefixed:
    """The transport, with ``head`` written in front of the first write."""

    __slots__ = ("_head", "_transport")

    def __init__(self, transport: Any, head: bytes) -> None:
        self._transport = transport
        self._head = head

    def write(self, data: bytes) -> None:
        head, self._head = self._head, b""
        self._transport.write(head + data)

    def __getattr__(self, name: str) -> Any:  # close(), is_closing(), ...
        return getattr(self._transport, name)


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's cycle, holding a head with a known non-zero length for its body."""

    _head: bytes = b""

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.response_started:
            transport = self.transport
            held = _Held()
            self.transport = held  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            if (
                self.chunked_encoding is False
                and self.expected_content_length > 0
                and self.scope["method"] != "HEAD"
                and not self.disconnected
            ):
                self._head = held.data
            elif held.data:
                transport.write(held.data)
            return
        head = self._head
        if not head or kind != "http.response.body":
            await super().send(message)
            return
        self._head = b""
        transport = self.transport
        self.transport = _Prefixed(transport, head)  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
