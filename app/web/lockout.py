"""Failed-login lockout: after ``max_failures`` wrong admin tokens from one client within
``window`` seconds, that client's logins and Bearer requests get 429 with ``Retry-After``
until the oldest of those failures is ``window`` old — even with the right token, so
guessing gains nothing during the lockout.

The client is the peer address as uvicorn reports it: ``X-Forwarded-For`` counts only
from ``[server] trusted_proxies``. ``LoginLimiter`` keeps the state in memory, for a serve
with one HTTP process; with several, they count together
(``hookline.web.shared_lockout``). A restart forgets. At most ``max_clients`` addresses
are tracked; beyond that the oldest entry goes, so a flood of addresses cannot grow memory.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from typing import Protocol

from starlette.types import Scope


class Limiter(Protocol):
    def retry_after(self, client: str) -> int | None: ...

    def failed(self, client: str) -> None: ...

    def succeeded(self, client: str) -> None: ...


def limiter_for(max_failures: int, window: float) -> Limiter:
    """The lockout of this HTTP process: shared with the other processes of its serve
    when there are several (they have a shared directory), else its own."""
    from hookline.shared_dir import shared_directory

    directory = shared_directory()
    if directory is None:
        return LoginLimiter(max_failures, window)
    from hookline.web.shared_lockout import SharedLoginLimiter

    return SharedLoginLimiter(directory, max_failures, window)


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class LoginLimiter:
    def __init__(
        self,
        max_failures: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._max_clients = max_clients
        # client → times of its latest failures (at most max_failures), oldest entry first
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again; None while it is not locked out."""
        times = self._failures.get(client)
        if times is None or len(times) < self._max:
            return None
        left = times[0] + self._window - self._clock()
        if left <= 0:
            return None
        return max(1, math.ceil(left))

    def failed(self, client: str) -> None:
        times = self._failures.pop(client, None)
        if times is None:
            times = collections.deque(maxlen=self._max)
        times.append(self._clock())
        self._failures[client] = times  # most recent last
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
