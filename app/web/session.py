"""Dashboard sessions: a signed, expiring cookie and the per-session CSRF token.

Logging in with the admin token sets ``hookline_session``: a random session id,
signed and timestamped with ``itsdangerous`` under a key derived from the admin
token (HMAC-SHA256(token, "hookline-session")). Nothing is kept on the server, so

- rotating the admin token ends every session at once;
- a session ends after ``max_age`` seconds (the signature carries its issue time);
- logging out clears the cookie in the browser. A copy of the cookie taken
  before that stays valid until it expires: the price of keeping no state.

The CSRF token of a session is HMAC(key, "csrf:" + session id). Every dashboard
form carries it in a hidden field; a state-changing POST whose field does not
match the cookie's session is refused with 403. The cookie itself is HttpOnly,
``SameSite=Strict``, ``Path=/admin``, and ``Secure`` when the request came over
https, so another site can neither read the token nor make the browser send it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import HTTPConnection
from starlette.responses import Response

COOKIE = "hookline_session"
COOKIE_PATH = "/admin"
DEFAULT_MAX_AGE = 8 * 3600


def session_key(admin_token: str) -> bytes:
    """The signing key of dashboard sessions, derived from the admin token."""
    return hmac.new(admin_token.encode(), b"hookline-session", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    csrf: str


class Sessions:
    """Issues and checks dashboard session cookies for one admin token."""

    def __init__(self, admin_token: str, max_age: int = DEFAULT_MAX_AGE) -> None:
        self.enabled = bool(admin_token)  # no token configured: no one can log in
        self.max_age = max_age
        self._key = session_key(admin_token)
        self._serializer = URLSafeTimedSerializer(self._key, salt="hookline.session")

    def _csrf(self, sid: str) -> str:
        return hmac.new(self._key, f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()

    def new(self) -> tuple[str, Session]:
        """A fresh session and the cookie value that carries it."""
        sid = secrets.token_urlsafe(24)
        return self._serializer.dumps({"sid": sid}), Session(sid, self._csrf(sid))

    def load(self, cookie: str | None) -> Session | None:
        """The session of a cookie value; None if absent, forged or expired."""
        if not self.enabled or not cookie or len(cookie) > 512:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is a subclass
            return None
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not sid:
            return None
        return Session(sid, self._csrf(sid))

    def of(self, conn: HTTPConnection) -> Session | None:
        return self.load(conn.cookies.get(COOKIE))

    @staticmethod
    def csrf_ok(session: Session | None, presented: object) -> bool:
        if session is None or not isinstance(presented, str) or not presented:
            return False
        return hmac.compare_digest(presented.encode(), session.csrf.encode())

    def set_cookie(self, response: Response, value: str, *, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.max_age,
            path=COOKIE_PATH,
            secure=secure,
            httponly=True,
            samesite="strict",
        )

    @staticmethod
    def clear_cookie(response: Response, *, secure: bool) -> None:
        response.delete_cookie(
            COOKIE, path=COOKIE_PATH, secure=secure, httponly=True, samesite="strict"
        )
