"""The typed settings object: TOML file + ``${VAR}`` interpolation, validated by pydantic.

Built once by the CLI and passed explicitly; nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hookline import timetable
from hookline.errors import ConfigError
from hookline.providers.standard import decode_secret

DEFAULT_CONFIG = "hookline.toml"
PROVIDERS = ("stripe", "github", "slack", "hmac", "standard")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME_RULE = "must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
RESERVED_SOURCE = "jobs"  # the source of every job's event (hookline.store.base.JOB_SOURCE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """``max_body_bytes = true`` is a mistake, not the number 1 (pydantic's lax mode),
        and ``workers = 1`` is no boolean. Strings stay allowed where they convert:
        ``port = "${PORT}"`` is how a number comes from the environment."""
        field = cls.model_fields.get(info.field_name or "")
        kinds = (set(get_args(field.annotation)) | {field.annotation}) if field else set()
        if isinstance(value, bool) and kinds & {int, float} and bool not in kinds:
            raise ValueError("must be a number, not true or false")
        if type(value) in (int, float) and bool in kinds and not kinds & {int, float}:
            raise ValueError("must be true or false")
        return value


def _one_of(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return value


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    max_body_bytes: int = Field(26_214_400, ge=1)
    graceful_timeout_seconds: float = Field(10.0, ge=0)
    # Limits against slow and hostile clients; where each is enforced: docs/architecture.md.
    max_header_bytes: int = Field(65_536, ge=1024, le=16_777_216)
    max_headers: int = Field(100, ge=8, le=10_000)
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(10.0, gt=0)
    max_connections: int = Field(2048, ge=1)
    max_in_flight: int = Field(512, ge=1)
    max_buffered_bytes: int = Field(268_435_456, ge=1)
    # Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed: the client address of the login lockout, and https.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for index, entry in enumerate(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies[{index}]: {entry!r} is not an IP address or network"
                ) from None
        return value

    # the base of absolute links and redirects; never the request's Host ("": relative ones)
    public_url: str = ""

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ValueError("must be an http:// or https:// URL, e.g. https://hooks.example.com")
        return value.rstrip("/")

    # HTTP processes sharing the port; unset: one per core (os.cpu_count()).
    processes: int | None = Field(None, ge=1, le=256)

    def process_count(self) -> int:
        return self.processes or os.cpu_count() or 1


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
    # wrong admin tokens (login form or Bearer) from one client within the window, before
    # that client gets 429 for the rest of the window
    max_failed_logins: int = Field(10, ge=1, le=10_000)
    failed_login_window_seconds: float = Field(300.0, gt=0)


class MetricsConfig(_Model):
    # Bearer token for GET /metrics; empty: /metrics is open (bind it to a private address)
    token: str = ""


class ApiConfig(_Model):
    # Bearer keys of the jobs gateway; several = rotation. None configured: every
    # gateway request is refused (401), never opened to anyone.
    keys: list[str] = Field(default_factory=list)

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for index, key in enumerate(value):
            if not key.strip():
                raise ValueError(f"api.keys[{index}]: is empty")
        return value


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
    # And on Linux the SCHED_IDLE class: a woken HTTP process preempts a worker at once, and
    # workers use what CPU nobody else wants. Off on a machine shared with other busy
    # programs, where the workers would wait for all of them.
    worker_sched_idle: bool = True
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

    @field_validator("notify_url")
    @classmethod
    def _notify_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(
                "must be an http:// or https:// URL, e.g. https://app.example/api/hookline"
            )
        return value

    @field_validator("notify_secret")
    @classmethod
    def _notify_secret(cls, value: str) -> str:
        if value:  # checked here, not first in a worker that would crash on it at each start
            decode_secret(value)  # its message never quotes the secret
        return value

    @model_validator(mode="after")
    def _notify_needs_both(self) -> PipelineConfig:
        if bool(self.notify_url) != bool(self.notify_secret):
            keys = ("notify_url", "notify_secret")
            given, missing = keys if self.notify_url else keys[::-1]
            raise ValueError(f"{missing} is required with {given}: ctx.notify needs both")
        return self


class SourceConfig(_Model):
    name: str
    provider: str
    secrets: list[str]
    tolerance_seconds: int = Field(300, ge=1)  # a provider needs a window to check in
    max_body_bytes: int | None = Field(None, ge=1)
    # github, and hmac with an id_header: how long the same signed body under another
    # (unsigned) id is answered as a duplicate of the first; "0" turns it off
    replay_window: str = "7d"
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
            raise ValueError(_NAME_RULE)
        return value

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        return _one_of(value, PROVIDERS)

    @field_validator("replay_window")
    @classmethod
    def _replay_window(cls, value: str) -> str:
        if value.strip() != "0":
            timetable.parse_duration(value)
        return value

    @property
    def replay_window_seconds(self) -> int:
        return (
            0 if self.replay_window.strip() == "0" else timetable.parse_duration(self.replay_window)
        )

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
    """One ``[[schedules]]`` entry: enqueue ``job`` with ``payload`` at each tick."""

    name: str
    job: str
    cron: str | None = None  # 5 fields, or 6 with seconds first; on the wall clock of timezone
    every: str | None = None  # "30s" | "5m" | "2h" | "1d", aligned to the Unix epoch
    timezone: str = "UTC"  # IANA name; for cron only
    payload: dict[str, Any] = Field(default_factory=dict)
    catch_up: Literal["skip", "latest", "all"] = "skip"  # ticks missed while nothing ran
    catch_up_window: str = "1d"  # how far back catch-up (and missed records) reach
    overlap: Literal["skip", "queue", "allow"] = "skip"  # a tick while a run is active

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SOURCE_NAME.match(value):
            raise ValueError(_NAME_RULE)
        return value

    @field_validator("catch_up", mode="before")
    @classmethod
    def _catch_up(cls, value: Any) -> Any:
        return _one_of(str(value), ("skip", "latest", "all"))

    @field_validator("overlap", mode="before")
    @classmethod
    def _overlap(cls, value: Any) -> Any:
        return _one_of(str(value), ("skip", "queue", "allow"))

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        timetable.zone(value)
        return value

    @field_validator("every", "catch_up_window")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            timetable.parse_duration(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            timetable.Cron(value, timetable.zone("UTC"))  # the zone does not change validity
        return value

    @model_validator(mode="after")
    def _cron_or_every(self) -> ScheduleConfig:
        if (self.cron is None) == (self.every is None):
            given = "both are set" if self.cron is not None else "neither is set"
            raise ValueError(f"set exactly one of cron or every ({given})")
        return self

    def times(self) -> timetable.Timetable:
        """When this schedule ticks."""
        if self.every is not None:
            return timetable.Every(timetable.parse_duration(self.every))
        assert self.cron is not None
        return timetable.Cron(self.cron, timetable.zone(self.timezone))

    @property
    def catch_up_seconds(self) -> int:
        return timetable.parse_duration(self.catch_up_window)


class Settings(_Model):
    # values handlers read as ctx.secrets["name"]; ``{ file = "..." }`` entries are read
    # by ``parse_settings`` (trailing newline stripped), so only strings reach the model
    secrets: dict[str, str] = Field(default_factory=dict)
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    schedules: list[ScheduleConfig] = Field(default_factory=list)

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: dict[str, str]) -> dict[str, str]:
        for name, secret in value.items():
            if not _SECRET_NAME.match(name):
                raise ValueError(f"secrets.{name}: a name is 1-64 letters, digits, '_', '-', '.'")
            if not secret:
                raise ValueError(f"secrets.{name}: the value is empty")
        return value

    @model_validator(mode="after")
    def _unique_sources(self) -> Settings:
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if source.name == RESERVED_SOURCE:
                raise ValueError(
                    f"sources[{index}].name: {RESERVED_SOURCE!r} is reserved for the jobs gateway"
                )
            if source.name in seen:
                raise ValueError(f"sources[{index}].name: duplicate source name {source.name!r}")
            seen.add(source.name)
        return self

    @model_validator(mode="after")
    def _unique_schedules(self) -> Settings:
        seen: set[str] = set()
        for index, schedule in enumerate(self.schedules):
            if schedule.name in seen:
                raise ValueError(
                    f"schedules[{index}].name: duplicate schedule name {schedule.name!r}"
                )
            seen.add(schedule.name)
        return self

    def schedule(self, name: str) -> ScheduleConfig | None:
        return next((s for s in self.schedules if s.name == name), None)

    @model_validator(mode="after")
    def _admin_token_is_no_api_key(self) -> Settings:
        # One credential must not open both the admin API and the gateway.
        if self.admin.token and self.admin.token in self.api.keys:
            index = self.api.keys.index(self.admin.token)
            raise ValueError(f"api.keys[{index}]: must differ from admin.token")
        return self

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def secret_values(self) -> list[str]:
        """Every configured secret value: ``[secrets]``, source secrets, API keys, the
        admin and metrics tokens and the notify secret. Redacted wherever hookline writes
        text."""
        found = [*self.secrets.values(), self.admin.token, self.metrics.token, *self.api.keys]
        found.append(self.pipeline.notify_secret)
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
    if message.startswith(("sources[", "schedules[", "<root>", "secrets.", "api.keys[")):
        return message
    return f"{_location(loc)}: {message}"


_SOURCE_AT = re.compile(r"^sources\[([0-9]+)\]")


def source_label(index: int, name: object) -> str:
    """``sources[1] (name "shopify")``: a source by its index and, when it has one, its name."""
    if not isinstance(name, str) or not name:
        return f"sources[{index}]"
    shown = name if len(name) <= 64 else name[:64] + "…"
    return f"sources[{index}] (name {json.dumps(shown, ensure_ascii=False)})"


def _name_the_source(message: str, data: Mapping[str, Any]) -> str:
    """``sources[1].encoding: …`` → ``sources[1] (name "shopify").encoding: …``."""
    match = _SOURCE_AT.match(message)
    sources = data.get("sources")
    if match is None or not isinstance(sources, list):
        return message
    index = int(match.group(1))
    entry = sources[index] if index < len(sources) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return source_label(index, name) + message[match.end() :]


def read_secret_files(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """``[secrets]`` entries ``{ file = "..." }`` → the file's text, trailing newline stripped.

    Read once, at start; a relative path is relative to the config file's folder.
    """
    table = data.get("secrets")
    if not isinstance(table, dict):
        return data  # absent, or the model reports the wrong type
    resolved: dict[str, Any] = {}
    for name, value in table.items():
        if isinstance(value, dict):
            if set(value) != {"file"} or not isinstance(value["file"], str):
                raise ConfigError(f'secrets.{name}: use a string or {{ file = "<path>" }}')
            path = base_dir / value["file"]
            try:
                value = path.read_text("utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(f"secrets.{name}: cannot read {path} ({reason})") from None
        resolved[name] = value
    return {**data, "secrets": resolved}


def parse_settings(
    data: Mapping[str, Any], env: Mapping[str, str], base_dir: Path | None = None
) -> Settings:
    try:
        interpolated = interpolate(dict(data), env)
        resolved = read_secret_files(interpolated, base_dir or Path.cwd())
        return Settings.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(_name_the_source(_first_error(exc), data)) from None
    except ConfigError as exc:  # a missing ${VAR}
        raise ConfigError(_name_the_source(str(exc), data)) from None


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
    return parse_settings(data, env, path.parent)
