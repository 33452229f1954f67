"""Redirects never point at the request's ``Host``.

Starlette builds the redirect of a missing trailing slash (``/admin`` → ``/admin/``) as an
absolute URL from the ``Host`` header, so anyone could make hookline send a browser to
``http://evil.example/admin/``. This wrapper rewrites the ``Location`` of every redirect
answer: an absolute one becomes the configured ``[server] public_url`` plus its path and
query, or, with no ``public_url``, just its path and query (a relative redirect, which
browsers resolve against the URL they asked for). Relative locations are left alone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def relative_location(location: str, public_url: str) -> str:
    """``location`` with its scheme and host replaced by ``public_url`` (or dropped)."""
    parts = urlsplit(location)
    if not parts.scheme and not parts.netloc:
        return location
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//"):
        path = "/" + path.lstrip("/")  # never a scheme-relative //host
    query = f"?{parts.query}" if parts.query else ""
    return public_url.rstrip("/") + path + query


class NoHostInRedirects:
    def __init__(self, app: ASGIApp, public_url: str = "") -> None:
        self._app = app
        self._public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def rewriting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                message["headers"] = [
                    self._rewrite(name, value) for name, value in message.get("headers", [])
                ]
            await send(message)

        await self._app(scope, receive, rewriting_send)

    def _rewrite(self, name: bytes, value: bytes) -> tuple[bytes, Any]:
        if name.lower() != b"location":
            return name, value
        return name, relative_location(value.decode("latin-1"), self._public_url).encode("latin-1")
