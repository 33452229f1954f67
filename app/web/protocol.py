"""uvicorn's httptools protocol with the limits that must hold before any ASGI code runs.

The HTTP parser buffers a request's head itself (httptools concatenates a header's
pieces until it is complete), so a cap in the app would come too late: a 100 MB header
would already be in memory. This protocol counts the bytes it feeds the parser while a
head is being read and refuses, writing the answer itself and closing the connection:

- 431 when the request line and headers pass ``max_header_bytes`` (the rest is never
  fed to the parser), or when there are more than ``max_headers`` headers;
- 408 when a head is not complete ``header_timeout`` after it could start (slow-loris);
  a connection that sent nothing of its next request is just closed;
- 408 when a body is not complete ``body_timeout`` after its head: the app's ``receive``
  then answers ``http.disconnect`` and whatever the app sends is dropped, so its slot is
  freed at once;
- 503 ``overloaded`` to a connection beyond ``max_connections`` (fds are finite; a
  slow-loris crowd is also cut by the head deadline).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from hookline.web.one_write import OneWriteCycle

log = logging.getLogger("hookline.http")


@dataclass(frozen=True, slots=True)
class ProtocolLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    max_connections: int
    retry_after_seconds: int = 1
    #: called with the error code of every refusal (for /metrics)
    on_refused: Callable[[str], None] = lambda reason: None


#: After a refusal, input is read and dropped for at most this long / this much.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1_048_576


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the answer is in ``_refusal``."""


def refusal_bytes(status: int, code: str, detail: str, retry_after: int | None = None) -> bytes:
    body = orjson.dumps({"error": code, "detail": detail})
    head = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    if retry_after is not None:
        head.append(b"retry-after: %d\r\n" % retry_after)
    return b"".join([*head, b"\r\n", body])


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Use ``bounded_protocol(limits)`` to get the class uvicorn instantiates."""

    limits: ClassVar[ProtocolLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request line and headers (or waiting for one)
        self._head_bytes = 0
        self._heads_done = 0
        self._header_count = 0
        self._refusal: tuple[str, bytes] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._lingering: int | None = None  # bytes discarded after a refusal

    # -- connection -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            detail = "too many connections; try again later"
            retry = self.limits.retry_after_seconds
            self._close_with("overloaded", refusal_bytes(503, "overloaded", detail, retry))
            return
        self._arm(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._discard(data)
            return
        if self._done():
            return
        if not self._in_head:
            self._feed(data)
            return
        room = self.limits.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            self._feed(data)
            return
        # Feed only what the cap allows: if the head does not end within it, refuse.
        heads_before = self._heads_done
        self._head_bytes += room
        self._feed(data[:room])
        if self._done():
            return
        if self._heads_done == heads_before:
            limit = self.limits.max_header_bytes
            detail = f"request line and headers exceed {limit} bytes"
            self._close_with("headers_too_large", refusal_bytes(431, "headers_too_large", detail))
            return
        self.data_received(data[room:])

    def _feed(self, data: bytes) -> None:
        """uvicorn's ``data_received``, with a refusal raised in a callback answered as such."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._close_with(*self._refusal)
                return
            # uvicorn answers text/plain here; every answer of hookline's is JSON
            detail = "not a valid HTTP/1.1 request (request line, headers or framing)"
            self._close_with("invalid_http", refusal_bytes(400, "invalid_request", detail))

    # -- parser callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._header_count = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            detail = f"more than {self.limits.max_headers} headers"
            self._refusal = ("too_many_headers", refusal_bytes(431, "too_many_headers", detail))
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
        super().on_headers_complete()
        if type(self.cycle) is not OneWriteCycle and self.cycle is not None:
            # uvicorn has just built the cycle; its task runs later, so it sends as this.
            self.cycle.__class__ = OneWriteCycle
        self._arm(self.limits.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._arm(self.limits.header_timeout, self._head_timed_out)

    # -- deadlines ----------------------------------------------------------------------
    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self._done() or not self._in_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # The previous request is still being answered: the client is waiting on us.
            self._arm(self.limits.header_timeout, self._head_timed_out)
            return
        if self._head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        detail = f"request headers not received within {self.limits.header_timeout:g}s"
        self._close_with("header_timeout", refusal_bytes(408, "header_timeout", detail))

    def _body_timed_out(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self._done() or self._in_head or cycle is None:
            return
        if cycle.response_started:  # answered already (e.g. a refusal); stop reading the rest
            self.transport.close()
            return
        # The app's receive() now answers http.disconnect and its sends are dropped.
        cycle.disconnected = True
        cycle.message_event.set()
        detail = f"request body not received within {self.limits.body_timeout:g}s"
        self._close_with("body_timeout", refusal_bytes(408, "body_timeout", detail))

    def _close_with(self, reason: str, answer: bytes) -> None:
        """Answer, then close gently: closing a socket with unread input resets it, and the
        client, still sending, would never read why. So stop writing, read and drop what
        still comes for a moment (bounded in bytes and time), then close."""
        log.info("refused", extra={"reason": reason, "client": _client(self.client)})
        self.limits.on_refused(reason)
        self.transport.write(answer)
        if self._lingering is not None or not self.transport.can_write_eof():
            self._disarm()
            self.transport.close()
            return
        self._lingering = 0
        self.flow.resume_reading()
        self.transport.write_eof()
        self._arm(LINGER_SECONDS, self.transport.close)

    def _done(self) -> bool:
        """Refused (answered, now lingering) or closed: parse nothing more."""
        return self._lingering is not None or self.transport.is_closing()

    def _discard(self, data: bytes) -> None:
        assert self._lingering is not None
        self._lingering += len(data)
        if self._lingering > LINGER_BYTES:
            self._disarm()
            self.transport.close()


def _client(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else ""


def bounded_protocol(limits: ProtocolLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, carrying these limits."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})
