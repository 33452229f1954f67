"""Ingestion: verify a webhook, match its handlers, store it durably with its runs.

Pure of HTTP: the route hands in the source name, lower-cased headers and the
raw body; this module answers with an ``Accepted`` or raises ``Rejected``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookline.config import Settings
from hookline.ids import new_id
from hookline.pipeline import Event, Registry, parse_data
from hookline.providers import REDACTED, Handshake, VerificationError, Verified
from hookline.sources import Source, build_sources
from hookline.store.base import IngestResult, NewEvent, NewRun, Store

log = logging.getLogger("hookline.ingest")

#: Bodies larger than this are verified (HMAC, JSON parse) in a thread, so one 25 MiB
#: delivery does not hold up the small acks behind it; hashlib releases the GIL on them.
OFF_LOOP_BYTES = 262_144

# Never stored in clear, whatever the source: credentials a sender might add, and every
# known provider's signature header (a MAC under some secret, even when sent to a source of
# another provider: svix-signature to a Standard source). Each configured source's own
# signature headers (an HMAC source's signature_header) are added per ``Ingestor``.
KNOWN_SIGNATURE_HEADERS = frozenset(
    {
        "stripe-signature",
        "x-hub-signature",
        "x-hub-signature-256",
        "webhook-signature",
        "svix-signature",
        "x-slack-signature",
    }
)
ALWAYS_REDACTED = (
    frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
    | KNOWN_SIGNATURE_HEADERS
)


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str
    event_id: str
    duplicate: bool
    runs: int


class Rejected(Exception):
    """A request the sender must fix (4xx); ``code`` is the ``error`` field."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def redact(headers: Mapping[str, str], secret_headers: frozenset[str]) -> dict[str, str]:
    return {
        name: REDACTED if name in secret_headers or name in ALWAYS_REDACTED else value
        for name, value in headers.items()
    }


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        self._clock = clock
        self.sources: dict[str, Source] = build_sources(settings.sources)
        # the signature headers of every configured source, redacted whatever the source
        self._signature_headers = frozenset().union(
            *(source.provider.signature_headers for source in self.sources.values())
        )

    def source(self, name: str) -> Source | None:
        return self.sources.get(name)

    def check_headers(self, source: Source, headers: Mapping[str, str]) -> None:
        """Raise ``Rejected`` for a request its headers alone condemn (missing, stale)."""
        try:
            source.provider.check_headers(headers, self._clock())
        except VerificationError as exc:
            raise Rejected(400, exc.code, str(exc)) from None

    async def receive(
        self, source: Source, headers: Mapping[str, str], body: bytes
    ) -> Accepted | Handshake:
        """Store a verified event (``Accepted``), or return the ``Handshake`` a sender's
        signed endpoint check is answered with (nothing stored)."""
        now = self._clock()
        try:
            if len(body) > OFF_LOOP_BYTES:
                verified = await asyncio.to_thread(source.provider.verify, body, headers, now)
            else:
                verified = source.provider.verify(body, headers, now)
        except VerificationError as exc:
            raise Rejected(400, exc.code, str(exc)) from None
        if isinstance(verified, Handshake):
            return verified
        new_event = self._new_event(source, verified, headers, body, now)
        result: IngestResult = await self._store.ingest(
            new_event, resume_failed=self._settings.pipeline.redelivery_resumes_failed
        )
        if result.replay_of is not None:
            # the claimed id and type are the sender's to choose; nothing signed is logged
            log.warning(
                "replay_suspected",
                extra={
                    "source": source.name,
                    "id": result.id,
                    "event_id": result.replay_of,
                    "claimed_event_id": verified.event_id[:200],
                    "claimed_type": verified.event_type[:200],
                },
            )
            return Accepted(result.id, result.replay_of, True, 0)
        return Accepted(result.id, verified.event_id, result.duplicate, len(new_event.runs))

    def _new_event(
        self,
        source: Source,
        verified: Verified,
        headers: Mapping[str, str],
        body: bytes,
        now: float,
    ) -> NewEvent:
        event_id = new_id("evt")
        specs = self._registry.matching(source.name, verified.event_type)
        default_attempts = self._settings.pipeline.max_attempts
        keyed = [s for s in specs if s.concurrency_key is not None]
        event: Event | None = None
        if keyed:  # only parse here when a key function needs the data
            event = Event(
                id=event_id,
                source=source.name,
                provider_event_id=verified.event_id,
                type=verified.event_type,
                data=parse_data(body, headers),
                body=body,
                headers=dict(headers),
                received_at=datetime.fromtimestamp(now, UTC),
            )
        runs = [
            NewRun(
                id=new_id("run"),
                handler=spec.name,
                max_attempts=spec.max_attempts or default_attempts,
                concurrency_key=spec.key_for(event) if event else None,
            )
            for spec in specs
        ]
        return NewEvent(
            id=event_id,
            source=source.name,
            provider_event_id=verified.event_id,
            type=verified.event_type,
            received_at=now,
            headers=redact(headers, self._signature_headers),
            body=body,
            runs=runs,
            **self._replay_check(source, body, now),
        )

    @staticmethod
    def _replay_check(source: Source, body: bytes, now: float) -> dict[str, Any]:
        """For a source whose id is unsigned, what lets the store spot the same signed body
        under another id within the window (a replay): its digest, and the window's start.

        The limit, documented: two genuinely different events with byte-identical bodies
        within the window are taken for one (GitHub and Shopify bodies carry ids and
        timestamps of their own, so this does not happen in practice)."""
        if not source.replay_window:
            return {}
        return {
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "replay_since": now - source.replay_window,
        }
