"""The common interface of every provider adapter.

A provider is pure: raw bytes, headers, its configured secrets and a clock in;
a verified event id and type, or a typed error, out. It imports nothing
else of hookline and does no I/O, so it is tested without a server.

Exception tree::

    VerificationError            -- any rejected request (HTTP 400)
     +-- InvalidSignature        -- missing/malformed header, or no secret matched
     +-- StaleTimestamp          -- signature valid but timestamp outside tolerance
     +-- InvalidPayload          -- validly signed, but not the JSON the provider sends

The ``code`` attribute is the ``error`` field of the HTTP answer.

``verify`` returns ``Verified`` (store the event) or, for a validly signed request that
is not an event but a sender's check of the endpoint (Slack's ``url_verification``),
a ``Handshake`` whose ``answer`` the route sends back with 200; nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

REDACTED = "[redacted]"


class VerificationError(Exception):
    """The request was rejected; ``str(exc)`` is safe to show (no secret, no signature)."""

    code = "invalid_signature"


class InvalidSignature(VerificationError):
    code = "invalid_signature"


class StaleTimestamp(VerificationError):
    code = "stale_timestamp"


class InvalidPayload(VerificationError):
    code = "invalid_payload"


#: Longest event id or type stored, in UTF-8 bytes (PostgreSQL's unique index on the id
#: refuses entries past ~2.7 KB; real ids and types are well under 256).
MAX_KEY_BYTES = 1024


def _storable(value: str, what: str) -> None:
    """Refuse text no store can hold as a key: lone surrogates (no UTF-8 form: SQLite's
    driver raises), NUL (PostgreSQL text refuses it) or an oversized value."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidPayload(f"event {what} contains a lone surrogate") from None
    if "\x00" in value:
        raise InvalidPayload(f"event {what} contains a NUL character")
    if size > MAX_KEY_BYTES:
        raise InvalidPayload(f"event {what} is longer than {MAX_KEY_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class Verified:
    """What a provider vouches for once the signature matched.

    Made only of text every store can hold: a validly signed payload whose id or type is
    not (``"id": "evt_\\ud800"``) is refused here, once for every provider, with an
    ``InvalidPayload`` naming why, rather than failing in the store's insert.
    """

    event_id: str
    event_type: str

    def __post_init__(self) -> None:
        _storable(self.event_id, "id")
        _storable(self.event_type, "type")


@dataclass(frozen=True, slots=True)
class Handshake:
    """A signed check of the endpoint: answer 200 with ``answer`` as JSON, store nothing."""

    kind: str
    answer: dict[str, Any]


class Provider(Protocol):
    """One configured source's verifier.

    ``headers`` maps **lower-case** header names to values.
    ``now`` is the current Unix time in seconds (injected so tests control the clock).
    """

    #: lower-case names of headers whose values are secrets/signatures and must be redacted
    signature_headers: frozenset[str]

    def check_headers(self, headers: Mapping[str, str], now: float) -> None:
        """What can be refused before the body is read: a header this provider always sends
        is missing or malformed, or the signed timestamp is already outside the tolerance.
        Raises the ``VerificationError`` that ``verify`` would; passing proves nothing."""
        ...

    #: True when the event id comes from a header the signature does not cover (GitHub's
    #: ``X-GitHub-Delivery``, an HMAC ``id_header``): anyone holding one signed delivery
    #: could send it again under a fresh id, so hookline checks for replays of the body.
    id_unsigned: bool

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> Verified | Handshake:
        """Check the signature over the raw ``body`` first, then the timestamp window,
        then extract id and type. Raise a ``VerificationError`` subclass on failure."""
        ...

    def sign(self, body: bytes, now: float) -> dict[str, str]:
        """Headers (signature and timestamp ones only) that make ``body`` verify at ``now``,
        signed with the first configured secret. Used by tests and ``hookline replay --resign``."""
        ...
