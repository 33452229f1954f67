"""The typed settings object: TOML file + ``${VAR}`` interpolation, validated by pydantic.

Built once by the CLI and passed explicitly; nothing else reads the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hookline.errors import ConfigError

DEFAULT_CONFIG = "hookline.toml"
PROVIDERS = ("stripe", "github", "hmac", "standard")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_of(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return value


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    max_body_bytes: int = Field(26_214_400, ge=1)
    graceful_timeout_seconds: float = Field(10.0, ge=0)


class StorageConfig(_Model):
    url: str = "sqlite:///./hookline.db"
    # PostgreSQL only: connections per process (each worker process, each serve process),
    # and the longest any query may run before the server cancels it (0: no limit).
    pool_size: int = Field(10, ge=1, le=1000)
    statement_timeout_seconds: float = Field(30.0, ge=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value


class AdminConfig(_Model):
    token: str = ""


class ApiConfig(_Model):
    keys: list[str] = Field(default_factory=list)


class PipelineConfig(_Model):
    handlers: list[str] = Field(default_factory=list)
    workers: int = Field(2, ge=0, le=64)
    concurrency: int = Field(32, ge=1, le=10_000)
    max_attempts: int = Field(8, ge=1)
    backoff_base_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(3600.0, ge=0)
    backoff_jitter: Literal["full", "equal", "none"] = "full"
    lease_seconds: float = Field(60.0, gt=0)
    poll_interval_seconds: float = Field(0.02, gt=0)
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    # Worker processes lower their CPU priority (os.nice) so the process answering
    # webhooks gets the CPU first while handlers burn it. Worker writes never hold
    # SQLite's lock while waiting for the GIL (op_log), so this cannot invert priorities.
    worker_nice: int = Field(10, ge=0, le=19)
    redelivery_resumes_failed: bool = True
    notify_url: str = ""
    notify_secret: str = ""

    @field_validator("backoff_jitter", mode="before")
    @classmethod
    def _jitter(cls, value: Any) -> Any:
        return _one_of(str(value), ("full", "equal", "none"))

    @field_validator("handlers", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class SourceConfig(_Model):
    name: str
    provider: str
    secrets: list[str]
    tolerance_seconds: int = Field(300, ge=0)
    max_body_bytes: int | None = Field(None, ge=1)
    # generic HMAC only
    signature_header: str = ""
    algorithm: str = "sha256"
    encoding: str = "hex"
    signature_prefix: str = ""
    signed_content: str = "{body}"
    timestamp_header: str = ""
    id_header: str = ""
    id_field: str = ""
    type_header: str = ""
    type_field: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SOURCE_NAME.match(value):
            raise ValueError("must be 1-64 letters, digits, '_', '-' or '.'")
        return value

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        return _one_of(value, PROVIDERS)

    @field_validator("algorithm")
    @classmethod
    def _algorithm(cls, value: str) -> str:
        return _one_of(value, ("sha1", "sha256", "sha512"))

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        return _one_of(value, ("hex", "base64"))

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one secret is required")
        if any(not s.strip() for s in value):
            raise ValueError("a secret is empty")
        return value

    @model_validator(mode="after")
    def _hmac_needs_header(self) -> SourceConfig:
        if self.provider == "hmac" and not self.signature_header:
            raise ValueError("signature_header is required for provider 'hmac'")
        return self


class ScheduleConfig(_Model):
    name: str
    cron: str
    job: str
    payload: dict[str, Any] = Field(default_factory=dict)
    timezone: str = "UTC"


class Settings(_Model):
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    schedules: list[ScheduleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_sources(self) -> Settings:
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources[{index}].name: duplicate source name {source.name!r}")
            seen.add(source.name)
        return self

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def secrets(self) -> list[str]:
        """Every configured secret, so logs and outputs can be checked against them."""
        found = [self.admin.token, *self.api.keys, self.pipeline.notify_secret]
        for source in self.sources:
            found.extend(source.secrets)
        return [s for s in found if s]


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` in every string; a missing variable is a ConfigError."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")
            return env[name]

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "<root>"


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    if message.startswith(("sources[", "<root>")):  # already located by a model validator
        return message
    return f"{_location(loc)}: {message}"


def parse_settings(data: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    try:
        return Settings.model_validate(interpolate(dict(data), env))
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None


def resolve_config_path(explicit: str | None, env: Mapping[str, str]) -> Path:
    """``--config``, else ``HOOKLINE_CONFIG``, else ``./hookline.toml``."""
    return Path(explicit or env.get("HOOKLINE_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_settings(data, env)
