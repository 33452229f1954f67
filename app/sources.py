"""Configured sources: a ``[[sources]]`` entry turned into its provider adapter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hookline.config import SourceConfig, source_label
from hookline.errors import ConfigError
from hookline.providers import (
    GitHubProvider,
    HmacProvider,
    Provider,
    SlackProvider,
    StandardProvider,
    StripeProvider,
)


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    provider: Provider
    max_body_bytes: int | None
    # seconds the same signed body under another id is a replay; 0 when the provider's
    # signature covers the id (a new id would not verify) or the window is off
    replay_window: int = 0


def build_provider(config: SourceConfig) -> Provider:
    if config.provider == "stripe":
        return StripeProvider(config.secrets, tolerance_seconds=config.tolerance_seconds)
    if config.provider == "github":
        return GitHubProvider(config.secrets)
    if config.provider == "slack":
        return SlackProvider(config.secrets, tolerance_seconds=config.tolerance_seconds)
    if config.provider == "standard":
        return StandardProvider(config.secrets, tolerance_seconds=config.tolerance_seconds)
    return HmacProvider(
        config.secrets,
        signature_header=config.signature_header,
        algorithm=config.algorithm,
        encoding=config.encoding,
        signature_prefix=config.signature_prefix,
        signed_content=config.signed_content,
        timestamp_header=config.timestamp_header,
        tolerance_seconds=config.tolerance_seconds,
        id_header=config.id_header,
        id_field=config.id_field,
        type_header=config.type_header,
        type_field=config.type_field,
    )


def build_sources(configs: Sequence[SourceConfig]) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for index, config in enumerate(configs):
        try:
            provider = build_provider(config)
        except ValueError as exc:  # e.g. a Standard Webhooks secret that is not base64
            key = str(exc)  # "secrets[1]: …" names a key of the source: source.secrets[1]
            joint = "." if key.startswith("secrets[") else ": "
            raise ConfigError(f"{source_label(index, config.name)}{joint}{key}") from None
        window = config.replay_window_seconds if provider.id_unsigned else 0
        sources[config.name] = Source(config.name, provider, config.max_body_bytes, window)
    return sources
