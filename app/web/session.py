"""Dashboard sessions: a signed, expiring cookie, a row on the server, the CSRF token.

Logging in with the admin token sets ``hookline_session``: a random session id,
signed and timestamped with ``itsdangerous`` under a key derived from the admin
token (HMAC-SHA256(token, "hookline-session")), and stores a row for it
(``hookline.store.sessions``: the SHA-256 of the id, and a hash of the admin token
it was made under — never the id or the token themselves). A cookie opens the
dashboard only while its signature, its age and its row all hold, so

- logging out deletes the row: a copy of the cookie taken before stops working;
- rotating the admin token ends every session at once (the signing key changes,
  and no row names the new token);
- a session ends after ``max_age`` seconds (the signature carries its issue time,
  the row its expiry on the store's clock).

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

from hookline.store.base import Store

COOKIE = "hookline_session"
COOKIE_PATH = "/admin"
DEFAULT_MAX_AGE = 8 * 3600
_CACHE = "hookline.session"  # the scope key of a request's session, looked up once


def session_key(admin_token: str) -> bytes:
    """The signing key of dashboard sessions, derived from the admin token."""
    return hmac.new(admin_token.encode(), b"hookline-session", hashlib.sha256).digest()


def id_hash(sid: str) -> str:
    """What the store keeps of a session id: enough to find it, useless as a cookie."""
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    csrf: str


class Sessions:
    """Issues, checks and ends dashboard sessions for one admin token."""

    def __init__(self, admin_token: str, store: Store, max_age: int = DEFAULT_MAX_AGE) -> None:
        self.enabled = bool(admin_token)  # no token configured: no one can log in
        self.max_age = max_age
        self._store = store
        self._key = session_key(admin_token)
        # the admin token's generation, as rows record it: a new token matches no old row
        self._generation = hmac.new(self._key, b"generation", hashlib.sha256).hexdigest()
        self._serializer = URLSafeTimedSerializer(self._key, salt="hookline.session")

    def _csrf(self, sid: str) -> str:
        return hmac.new(self._key, f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()

    async def new(self) -> tuple[str, Session]:
        """A fresh session, stored, and the cookie value that carries it."""
        sid = secrets.token_urlsafe(32)
        await self._store.create_session(id_hash(sid), self._generation, self.max_age)
        return self._serializer.dumps({"sid": sid}), Session(sid, self._csrf(sid))

    async def load(self, cookie: str | None) -> Session | None:
        """The session of a cookie value; None if absent, forged, expired or ended."""
        if not self.enabled or not cookie or len(cookie) > 512:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is a subclass
            return None
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not sid:
            return None
        if not await self._store.session_valid(id_hash(sid), self._generation):
            return None
        return Session(sid, self._csrf(sid))

    async def of(self, conn: HTTPConnection) -> Session | None:
        """The request's session, looked up once per request."""
        if _CACHE not in conn.scope:
            conn.scope[_CACHE] = await self.load(conn.cookies.get(COOKIE))
        session: Session | None = conn.scope[_CACHE]
        return session

    async def forget_other_tokens(self) -> None:
        """At start: sessions of any earlier admin token end for good."""
        await self._store.forget_sessions_of_other_tokens(self._generation)

    async def end(self, session: Session) -> None:
        """Log out: the session's row goes, so no copy of its cookie works any more."""
        await self._store.delete_session(id_hash(session.sid))

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
