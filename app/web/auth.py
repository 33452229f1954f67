"""Admin authentication: one guard in front of everything under ``/admin``.

A request that presents a Bearer token is a login attempt: a wrong one counts towards
the client's lockout (``hookline.web.lockout``), and while that is in force every
attempt of the client, right or wrong, gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hookline.web.lockout import Limiter, client_of
from hookline.web.responses import error


def token_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison; an unset admin token matches nothing."""
    if not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def locked_out(retry_after: int) -> Response:
    return error(
        429,
        "too_many_failed_logins",
        f"too many wrong admin tokens from this address; retry in {retry_after} s",
        headers={"retry-after": str(retry_after)},
    )


def bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = bytes(value).decode("latin-1")
            scheme, _, credentials = text.partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
    return ""


class AdminGuard:
    """401 unless the request carries the admin token (Bearer) or, where
    ``session_ok`` allows it, a valid dashboard session. ``open_paths`` (full
    paths) need neither; ``unauthorized`` may answer the 401 itself (the
    dashboard's login form), else it is the JSON error."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        limiter: Limiter,
        open_paths: frozenset[str] = frozenset(),
        session_ok: Callable[[Scope], Awaitable[bool]] | None = None,
        unauthorized: Callable[[Scope], Response | None] | None = None,
    ) -> None:
        self.app = app
        self._token = token
        self._limiter = limiter
        self._open = open_paths
        self._session_ok = session_ok
        self._unauthorized = unauthorized

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self._open:
            await self.app(scope, receive, send)
            return
        presented = bearer(scope)
        if presented:
            client = client_of(scope)
            wait = self._limiter.retry_after(client)
            if wait is not None:
                await locked_out(wait)(scope, receive, send)
                return
            if token_matches(presented, self._token):
                self._limiter.succeeded(client)
                await self.app(scope, receive, send)
                return
            self._limiter.failed(client)
        if self._session_ok is not None and await self._session_ok(scope):
            await self.app(scope, receive, send)
            return
        response = self._unauthorized(scope) if self._unauthorized is not None else None
        if response is None:
            response = error(
                401,
                "unauthorized",
                "missing or wrong admin token",
                headers={"www-authenticate": "Bearer"},
            )
        await response(scope, receive, send)
