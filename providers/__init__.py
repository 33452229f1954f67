"""Provider adapters: pure signature verification and event id/type extraction.

See ``hookline.providers.base`` for the interface and the exception tree.
"""

from __future__ import annotations

from hookline.providers.base import (
    REDACTED,
    Handshake,
    InvalidPayload,
    InvalidSignature,
    Provider,
    StaleTimestamp,
    VerificationError,
    Verified,
)
from hookline.providers.github import GitHubProvider
from hookline.providers.hmac import HmacProvider
from hookline.providers.slack import SlackProvider
from hookline.providers.standard import StandardProvider
from hookline.providers.stripe import StripeProvider

#: The values accepted for ``provider`` in a ``[[sources]]`` table.
PROVIDER_NAMES = ("stripe", "github", "slack", "hmac", "standard")

__all__ = [
    "PROVIDER_NAMES",
    "REDACTED",
    "GitHubProvider",
    "Handshake",
    "HmacProvider",
    "InvalidPayload",
    "InvalidSignature",
    "Provider",
    "SlackProvider",
    "StaleTimestamp",
    "StandardProvider",
    "StripeProvider",
    "VerificationError",
    "Verified",
]
