"""``hookline.config``: TOML + ``${VAR}`` interpolation → one validated, typed ``Settings``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hookline.config import (
    DEFAULT_CONFIG,
    Settings,
    interpolate,
    load_settings,
    parse_settings,
    resolve_config_path,
)
from hookline.errors import ConfigError, HooklineError

STRIPE = {"name": "stripe", "provider": "stripe", "secrets": ["whsec_abc"]}
SHOPIFY = {
    "name": "shopify",
    "provider": "hmac",
    "secrets": ["shh"],
    "signature_header": "X-Shopify-Hmac-Sha256",
}
NIGHTLY = {"name": "nightly", "job": "report", "cron": "0 3 * * *"}


def error_of(data: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, env or {})
    return str(caught.value)


# -- interpolation -------------------------------------------------------------------------------


def test_interpolate_replaces_variables_in_every_string() -> None:
    data = {
        "admin": {"token": "${TOKEN}"},
        "api": {"keys": ["${KEY}", "static", "k-${KEY}-${TOKEN}"]},
        "pipeline": {"notify_url": "${APP_URL}/api/hookline", "workers": 3, "ok": True},
    }
    env = {"TOKEN": "t0k", "KEY": "k3y", "APP_URL": "https://app.example"}
    assert interpolate(data, env) == {
        "admin": {"token": "t0k"},
        "api": {"keys": ["k3y", "static", "k-k3y-t0k"]},
        "pipeline": {"notify_url": "https://app.example/api/hookline", "workers": 3, "ok": True},
    }


def test_interpolate_leaves_other_dollar_text_alone() -> None:
    env = {"A": "x"}
    assert interpolate("$A ${} ${1A} $${A} {A}", env) == "$A ${} ${1A} $x {A}"


def test_interpolated_values_are_not_interpolated_again() -> None:
    # A secret that happens to contain "${...}" is taken literally.
    assert interpolate("${A}", {"A": "${B}", "B": "no"}) == "${B}"


def test_empty_variable_is_a_value_not_a_missing_one() -> None:
    assert interpolate("[${EMPTY}]", {"EMPTY": ""}) == "[]"


def test_missing_variable_names_the_key_and_the_variable() -> None:
    data = {"sources": [STRIPE, {**STRIPE, "name": "b", "secrets": ["ok", "${NOPE}"]}]}
    message = error_of(data, {})
    assert message == 'sources[1] (name "b").secrets[1]: environment variable NOPE is not set'
    assert error_of({"admin": {"token": "${T}"}}) == (
        "admin.token: environment variable T is not set"
    )


def test_interpolation_applies_before_validation() -> None:
    settings = parse_settings(
        {"server": {"port": "${PORT}"}, "sources": [{**STRIPE, "secrets": ["${S}"]}]},
        {"PORT": "9000", "S": "whsec_from_env"},
    )
    assert settings.server.port == 9000
    assert settings.sources[0].secrets == ["whsec_from_env"]


# -- defaults and shapes -------------------------------------------------------------------------


def test_defaults_of_an_empty_file() -> None:
    settings = parse_settings({}, {})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8400
    assert settings.server.max_body_bytes == 25 * 1024 * 1024
    assert settings.storage.url == "sqlite:///./hookline.db"
    assert settings.admin.token == ""
    assert settings.api.keys == []
    pipeline = settings.pipeline
    assert pipeline.handlers == []
    assert (pipeline.workers, pipeline.concurrency, pipeline.max_attempts) == (2, 32, 8)
    assert (pipeline.backoff_base_seconds, pipeline.backoff_max_seconds) == (1.0, 3600.0)
    assert pipeline.lease_seconds == 60
    assert pipeline.redelivery_resumes_failed is True
    assert (pipeline.worker_nice, pipeline.worker_sched_idle) == (10, True)
    assert settings.sources == [] and settings.schedules == []


def test_http_processes_default_to_the_cores() -> None:
    assert parse_settings({}, {}).server.process_count() == (os.cpu_count() or 1)
    assert parse_settings({"server": {"processes": 3}}, {}).server.process_count() == 3
    with pytest.raises(ConfigError, match=r"server\.processes"):
        parse_settings({"server": {"processes": 0}}, {})


def test_source_defaults() -> None:
    source = parse_settings({"sources": [SHOPIFY]}, {}).sources[0]
    assert source.tolerance_seconds == 300
    assert source.max_body_bytes is None
    assert (source.algorithm, source.encoding) == ("sha256", "hex")
    assert source.signature_prefix == ""
    assert source.signed_content == "{body}"
    assert source.timestamp_header == source.id_header == source.id_field == ""


@pytest.mark.parametrize(
    ("handlers", "expected"),
    [
        ("examples.handlers", ["examples.handlers"]),
        (["a.handlers", "b.handlers"], ["a.handlers", "b.handlers"]),
        ([], []),
    ],
)
def test_handlers_may_be_one_string_or_a_list(handlers: Any, expected: list[str]) -> None:
    settings = parse_settings({"pipeline": {"handlers": handlers}}, {})
    assert settings.pipeline.handlers == expected


def test_source_lookup_and_all_secrets() -> None:
    settings = parse_settings(
        {
            "admin": {"token": "adm"},
            "api": {"keys": ["k1", "k2"]},
            "pipeline": {"notify_url": "https://app.example/h", "notify_secret": "whsec_bm90aWZ5"},
            "sources": [{**STRIPE, "secrets": ["s1", "s2"]}, SHOPIFY],
        },
        {},
    )
    assert settings.source("shopify") is settings.sources[1]
    assert settings.source("nope") is None
    assert sorted(settings.secret_values()) == sorted(
        ["adm", "k1", "k2", "whsec_bm90aWZ5", "s1", "s2", "shh"]
    )
    assert parse_settings({}, {}).secret_values() == []  # unset values are not "secrets"


def test_settings_are_immutable() -> None:
    settings = parse_settings({"sources": [STRIPE]}, {})
    with pytest.raises(ValidationError):
        settings.server.port = 1  # type: ignore[misc]
    assert isinstance(Settings(), Settings)


# -- errors: one message naming the key ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"sources": [STRIPE, {**SHOPIFY, "encoding": "base32"}]},
            'sources[1] (name "shopify").encoding: must be one of hex, base64',
        ),
        (
            {"sources": [{**SHOPIFY, "algorithm": "md5"}]},
            'sources[0] (name "shopify").algorithm: must be one of',
        ),
        (
            {"sources": [STRIPE, SHOPIFY, {**STRIPE, "secrets": ["other"]}]},
            "sources[2] (name \"stripe\").name: duplicate source name 'stripe'",
        ),
        (
            {"sources": [{**STRIPE, "provider": "paypal"}]},
            'sources[0] (name "stripe").provider: must be one of stripe, github, slack, hmac, '
            "standard",
        ),
        (
            {"sources": [{**STRIPE, "secrets": []}]},
            'sources[0] (name "stripe").secrets: at least one secret',
        ),
        (
            {"sources": [{**STRIPE, "secrets": ["ok", " "]}]},
            'sources[0] (name "stripe").secrets: a secret is empty',
        ),
        ({"sources": [{**STRIPE, "secrets": "whsec_x"}]}, 'sources[0] (name "stripe").secrets: '),
        (
            {"sources": [{"provider": "stripe", "secrets": ["x"]}]},
            "sources[0].name: Field required",
        ),
        (
            {"sources": [{**STRIPE, "name": "has space"}]},
            'sources[0] (name "has space").name: must be 1-64',
        ),
        (
            {"sources": [{**STRIPE, "name": "x" * 65}]},
            'sources[0] (name "' + "x" * 64 + '…").name: must be 1-64',
        ),
        (
            {"sources": [{**SHOPIFY, "signature_header": ""}]},
            "sources[0] (name \"shopify\"): signature_header is required for provider 'hmac'",
        ),
        (
            {"sources": [{**STRIPE, "tolerance_seconds": -1}]},
            'sources[0] (name "stripe").tolerance_seconds: ',
        ),
        (
            {"sources": [{**STRIPE, "max_body_bytes": 0}]},
            'sources[0] (name "stripe").max_body_bytes: ',
        ),
        (
            {"sources": [{**STRIPE, "secret": ["x"]}]},
            'sources[0] (name "stripe").secret: unknown key',
        ),
        ({"sources": {"name": "x"}}, "sources: "),
        ({"server": {"port": 70000}}, "server.port: "),
        ({"server": {"port": "eighty"}}, "server.port: "),
        ({"server": {"max_body_bytes": 0}}, "server.max_body_bytes: "),
        ({"server": {"prot": 8400}}, "server.prot: unknown key"),
        ({"serverx": {}}, "serverx: unknown key"),
        ({"storage": {"url": "mysql://db"}}, "storage.url: must start with sqlite:/// or"),
        ({"pipeline": {"workers": -1}}, "pipeline.workers: "),
        ({"pipeline": {"concurrency": 0}}, "pipeline.concurrency: "),
        ({"pipeline": {"lease_seconds": 0}}, "pipeline.lease_seconds: "),
        ({"pipeline": {"handlers": 5}}, "pipeline.handlers: "),
        (
            {"schedules": [{"name": "n", "job": "j"}]},
            "schedules[0]: set exactly one of cron or every (neither is set)",
        ),
        (
            {"schedules": [{**NIGHTLY, "every": "1h"}]},
            "schedules[0]: set exactly one of cron or every (both are set)",
        ),
        ({"schedules": [{**NIGHTLY, "cron": "0 3 * *"}]}, "schedules[0].cron: '0 3 * *' has 4"),
        ({"schedules": [{**NIGHTLY, "cron": "0 25 * * *"}]}, "schedules[0].cron: '0 25 * * *':"),
        ({"schedules": [{**NIGHTLY, "cron": "0 0 31 2 *"}]}, "schedules[0].cron: "),
        (
            {"schedules": [{**NIGHTLY, "timezone": "Europe/Bärlin"}]},
            "schedules[0].timezone: unknown time zone 'Europe/Bärlin'",
        ),
        (
            {"schedules": [NIGHTLY, {**NIGHTLY, "cron": None, "every": "90"}]},
            "schedules[1].every: '90' is not a duration",
        ),
        ({"schedules": [{**NIGHTLY, "catch_up": "some"}]}, "schedules[0].catch_up: must be one"),
        ({"schedules": [{**NIGHTLY, "catch_up_window": "1y"}]}, "schedules[0].catch_up_window"),
        ({"schedules": [{**NIGHTLY, "overlap": "wait"}]}, "schedules[0].overlap: must be one of"),
        ({"schedules": [{**NIGHTLY, "name": "a/b"}]}, "schedules[0].name: must be 1-64"),
        ({"schedules": [{**NIGHTLY, "job": None}]}, "schedules[0].job: "),
        ({"schedules": [{**NIGHTLY, "payload": [1]}]}, "schedules[0].payload: "),
        ({"schedules": [{**NIGHTLY, "tz": "UTC"}]}, "schedules[0].tz: unknown key"),
        ({"schedules": [NIGHTLY, NIGHTLY]}, "schedules[1].name: duplicate schedule name"),
        ({"admin": {"token": 5}}, "admin.token: "),
        (
            {"pipeline": {"notify_url": "https://app.example/h", "notify_secret": "whsec_n0t!"}},
            "pipeline.notify_secret: Standard Webhooks secret is not valid base64",
        ),
        (
            {"pipeline": {"notify_url": "app.example/h", "notify_secret": "whsec_bm90aWZ5"}},
            "pipeline.notify_url: must be an http:// or https:// URL",
        ),
        ({"server": {"max_body_bytes": True}}, "server.max_body_bytes: must be a number, not"),
        (
            {"sources": [{**STRIPE, "tolerance_seconds": True}]},
            'sources[0] (name "stripe").tolerance_seconds: must be a number, not true or false',
        ),
        ({"pipeline": {"backoff_base_seconds": False}}, "pipeline.backoff_base_seconds: must"),
        (
            {"sources": [{**STRIPE, "name": "_unknown"}]},
            "sources[0] (name \"_unknown\").name: must be 1-64 letters, digits, '_', '-' or "
            "'.', starting with a letter or digit",
        ),
        (
            {"sources": [{**STRIPE, "tolerance_seconds": 0}]},
            'sources[0] (name "stripe").tolerance_seconds: Input should be greater than or equal '
            "to 1",
        ),
        ({"pipeline": {"redelivery_resumes_failed": 0}}, "pipeline.redelivery_resumes_failed: "),
        (
            {"pipeline": {"notify_url": "https://app.example/h"}},
            "pipeline: notify_secret is required with notify_url",
        ),
        (
            {"pipeline": {"notify_secret": "whsec_bm90aWZ5"}},
            "pipeline: notify_url is required with notify_secret",
        ),
    ],
)
def test_invalid_config_is_one_message_naming_the_key(data: dict[str, Any], expected: str) -> None:
    message = error_of(data)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert "Value error" not in message and "pydantic" not in message


def test_source_errors_name_the_source_only_when_it_has_a_name() -> None:
    nameless = {"provider": "stripe", "secrets": ["x"]}
    assert error_of({"sources": [nameless]}) == "sources[0].name: Field required"
    odd = {**STRIPE, "name": 'say "hi"', "tolerance_seconds": -1}
    assert error_of({"sources": [odd]}).startswith('sources[0] (name "say \\"hi\\"").name: ')


def test_schedule_defaults_and_times() -> None:
    every, nightly = parse_settings(
        {"schedules": [{"name": "tick", "job": "j", "every": "30s"}, NIGHTLY]}, {}
    ).schedules
    assert (nightly.timezone, nightly.catch_up, nightly.overlap) == ("UTC", "skip", "skip")
    assert nightly.catch_up_seconds == 86_400 and nightly.payload == {}
    assert every.times().next_after(61) == 90
    assert nightly.times().next_after(0) == 3 * 3600


def test_config_error_is_a_hookline_error() -> None:
    assert issubclass(ConfigError, HooklineError)


def test_error_messages_do_not_echo_secrets() -> None:
    secret = "whsec_super_secret_value"
    message = error_of({"sources": [{**STRIPE, "secrets": [secret], "provider": "nope"}]})
    assert secret not in message


# -- files and the config path -------------------------------------------------------------------


def test_load_settings_reads_toml_and_the_given_env(tmp_path: Path) -> None:
    path = tmp_path / "hookline.toml"
    path.write_text(
        '[admin]\ntoken = "${TOKEN}"\n\n'
        '[pipeline]\nhandlers = "examples.handlers"\n\n'
        '[[sources]]\nname = "stripe"\nprovider = "stripe"\nsecrets = ["${STRIPE_SECRET}"]\n',
        encoding="utf-8",
    )
    settings = load_settings(path, {"TOKEN": "tok", "STRIPE_SECRET": "whsec_s"})
    assert settings.admin.token == "tok"
    assert settings.pipeline.handlers == ["examples.handlers"]
    assert settings.sources[0].secrets == ["whsec_s"]


def test_load_settings_defaults_to_the_process_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[admin]\ntoken = "${HOOKLINE_TEST_TOKEN}"\n')
    monkeypatch.setenv("HOOKLINE_TEST_TOKEN", "from-env")
    assert load_settings(path).admin.token == "from-env"
    monkeypatch.delenv("HOOKLINE_TEST_TOKEN")
    with pytest.raises(ConfigError, match="HOOKLINE_TEST_TOKEN is not set"):
        load_settings(path)


def test_load_settings_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read config file"):
        load_settings(missing, {})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_settings(broken, {})
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[admin]\ntoken = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: not valid TOML"):
        load_settings(latin, {})


def test_config_path_flag_beats_env_beats_default() -> None:
    env = {"HOOKLINE_CONFIG": "/etc/hookline/env.toml"}
    assert resolve_config_path("flag.toml", env) == Path("flag.toml")
    assert resolve_config_path(None, env) == Path("/etc/hookline/env.toml")
    assert resolve_config_path(None, {}) == Path(DEFAULT_CONFIG) == Path("hookline.toml")
    assert resolve_config_path(None, {"HOOKLINE_CONFIG": ""}) == Path("hookline.toml")


def test_secrets_from_env_and_files(tmp_path: Path) -> None:
    (tmp_path / "openai").write_text("sk-from-file\n")
    (tmp_path / "crlf").write_bytes(b"windows-secret\r\n")
    config = tmp_path / "hookline.toml"
    config.write_text(
        '[secrets]\nresend = "${RESEND_KEY}"\nopenai = { file = "openai" }\n'
        f'abs = {{ file = "{tmp_path / "crlf"}" }}\n'
    )
    settings = load_settings(config, {"RESEND_KEY": "re_123"})
    assert settings.secrets == {
        "resend": "re_123",
        "openai": "sk-from-file",
        "abs": "windows-secret",
    }
    assert {"re_123", "sk-from-file", "windows-secret"} <= set(settings.secret_values())


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        (
            {"openai": {"file": "/nonexistent/openai"}},
            "secrets.openai: cannot read /nonexistent/openai",
        ),
        ({"openai": {"path": "x"}}, 'secrets.openai: use a string or { file = "<path>" }'),
        ({"empty": ""}, "secrets.empty: the value is empty"),
        ({"bad name": "x"}, "secrets.bad name: a name is"),
        ({"n": 5}, "secrets.n: Input should be a valid string"),
    ],
)
def test_bad_secrets_name_the_key(secrets: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"secrets": secrets}, {})
    assert str(caught.value).startswith(message), str(caught.value)


def test_missing_secret_variable_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"secrets.resend: environment variable RESEND_KEY"):
        parse_settings({"secrets": {"resend": "${RESEND_KEY}"}}, {})


def test_api_keys_and_the_jobs_source_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"api.keys\[1\]: is empty"):
        parse_settings({"api": {"keys": ["k", " "]}}, {})
    with pytest.raises(ConfigError, match=r"api.keys\[0\]: must differ from admin.token"):
        parse_settings({"admin": {"token": "same"}, "api": {"keys": ["same"]}}, {})
    reserved = r"sources\[0\] \(name \"jobs\"\)\.name: 'jobs' is reserved"
    with pytest.raises(ConfigError, match=reserved):
        parse_settings({"sources": [{**STRIPE, "name": "jobs"}]}, {})
    assert parse_settings({"api": {"keys": []}}, {}).api.keys == []


def test_storage_pool_size_and_statement_timeout() -> None:
    url = "postgresql://hookline@db.internal/hookline"
    defaults = parse_settings({"storage": {"url": url}}, {}).storage
    assert (defaults.pool_size, defaults.statement_timeout_seconds) == (10, 30.0)
    chosen = parse_settings(
        {"storage": {"url": url, "pool_size": 40, "statement_timeout_seconds": 2.5}}, {}
    ).storage
    assert (chosen.pool_size, chosen.statement_timeout_seconds) == (40, 2.5)
    assert "storage.pool_size" in error_of({"storage": {"url": url, "pool_size": 0}})
    assert "storage.statement_timeout_seconds" in error_of(
        {"storage": {"url": url, "statement_timeout_seconds": -1}}
    )


def test_numbers_and_booleans_may_come_from_the_environment_as_strings() -> None:
    """A ${VAR} is always text: "8401" is a port and "false" a boolean, while a TOML
    boolean where a number belongs (or a number for a boolean) is a mistake (above)."""
    settings = parse_settings(
        {
            "server": {"port": "${PORT}", "max_body_bytes": 1024},
            "pipeline": {"max_attempts": "${ATTEMPTS}", "redelivery_resumes_failed": "${R}"},
        },
        {"PORT": "8401", "ATTEMPTS": "3", "R": "false"},
    )
    assert settings.server.port == 8401 and settings.pipeline.max_attempts == 3
    assert settings.pipeline.redelivery_resumes_failed is False
