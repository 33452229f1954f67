"""``hookline serve`` / ``migrate`` with a bad config: exit 2, one clear message, nothing
started (SPEC §2, §5); and which config file is used (``--config`` > ``HOOKLINE_CONFIG`` >
``./hookline.toml``). Every case runs the real CLI as a subprocess in a scratch directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ROOT, free_port

GOOD_SOURCE = """
[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["whsec_cli_test_secret"]
"""


def hookline(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "HOOKLINE_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "hookline.cli", *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_config(directory: Path, body: str, name: str = "hookline.toml") -> Path:
    path = directory / name
    path.write_text(f'[storage]\nurl = "sqlite:///./hookline.db"\n{body}')
    return path


def assert_refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one message, no traceback
    message = lines[0]
    assert message.startswith("hookline: "), message
    for part in expected:
        assert part in message, message
    return message


INVALID = {
    "bad-encoding": (
        GOOD_SOURCE
        + """
[[sources]]
name = "shopify"
provider = "hmac"
secrets = ["shopify-secret"]
signature_header = "X-Shopify-Hmac-Sha256"
encoding = "base32"
""",
        ['sources[1] (name "shopify").encoding: must be one of hex, base64'],
    ),
    "duplicate-source-name": (
        GOOD_SOURCE + GOOD_SOURCE,
        ['sources[1] (name "stripe").name', "duplicate source name 'stripe'"],
    ),
    "unknown-provider": (
        '[[sources]]\nname = "pp"\nprovider = "paypal"\nsecrets = ["x"]\n',
        ['sources[0] (name "pp").provider: must be one of stripe, github, slack, hmac, standard'],
    ),
    "empty-secret": (
        '[[sources]]\nname = "s"\nprovider = "stripe"\nsecrets = ["  "]\n',
        ['sources[0] (name "s").secrets', "empty"],
    ),
    "missing-variable": (
        '[[sources]]\nname = "s"\nprovider = "stripe"\nsecrets = ["${HOOKLINE_TEST_UNSET_VAR}"]\n',
        ['sources[0] (name "s").secrets[0]', "HOOKLINE_TEST_UNSET_VAR", "not set"],
    ),
    "standard-secret-not-base64": (
        '[[sources]]\nname = "acme"\nprovider = "standard"\nsecrets = ["whsec_not*base64!"]\n',
        ['sources[0] (name "acme").secrets[0]: ', "base64"],
    ),
    "unknown-key": ("[server]\nprot = 8400\n", ["server.prot: unknown key"]),
    "missing-secret-file": (
        '[secrets]\nopenai = { file = "no-such-secret-file" }\n',
        ["secrets.openai: cannot read", "no-such-secret-file", "No such file"],
    ),
    "jobs-is-no-source-name": (
        '[[sources]]\nname = "jobs"\nprovider = "stripe"\nsecrets = ["whsec_x"]\n',
        ["sources[0] (name \"jobs\").name: 'jobs' is reserved"],
    ),
    "schedule-bad-cron": (
        '[[schedules]]\nname = "n"\njob = "j"\ncron = "0 25 * * *"\n',
        ["schedules[0].cron: '0 25 * * *': bad hour"],
    ),
    "schedule-unknown-timezone": (
        '[[schedules]]\nname = "n"\njob = "j"\ncron = "0 3 * * *"\ntimezone = "Europe/Atlantis"\n',
        ["schedules[0].timezone: unknown time zone 'Europe/Atlantis'"],
    ),
    "schedule-cron-and-every": (
        '[[schedules]]\nname = "n"\njob = "j"\ncron = "0 3 * * *"\nevery = "1h"\n',
        ["schedules[0]: set exactly one of cron or every (both are set)"],
    ),
    "schedule-neither-cron-nor-every": (
        '[[schedules]]\nname = "n"\njob = "j"\n',
        ["schedules[0]: set exactly one of cron or every (neither is set)"],
    ),
    "admin-token-as-api-key": (
        '[admin]\ntoken = "tok-1234567"\n[api]\nkeys = ["tok-1234567"]\n',
        ["api.keys[0]: must differ from admin.token"],
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_invalid_config_exits_2_naming_the_key(tmp_path: Path, case: str) -> None:
    body, expected = INVALID[case]
    write_config(tmp_path, body)
    result = hookline(tmp_path, "migrate", "--config", "hookline.toml")
    message = assert_refused(result, "invalid config", *expected)
    assert "not*base64" not in message and "tok-1234567" not in message  # never echoed
    assert not (tmp_path / "hookline.db").exists()  # nothing created


@pytest.mark.parametrize(
    "case", ["bad-encoding", "standard-secret-not-base64", "schedule-unknown-timezone"]
)
def test_serve_with_invalid_config_starts_nothing(tmp_path: Path, case: str) -> None:
    body, expected = INVALID[case]
    write_config(tmp_path, body)
    result = hookline(tmp_path, "serve", "--port", str(free_port()))
    assert_refused(result, "invalid config", *expected)
    assert not (tmp_path / "hookline.db").exists()


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "99999"), ("--workers", "-1"), ("--processes", "257")]
)
def test_serve_flags_have_the_bounds_of_their_config_keys(
    tmp_path: Path, flag: str, value: str
) -> None:
    write_config(tmp_path, "")
    result = hookline(tmp_path, "serve", flag, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"Invalid value for '{flag}'" in result.stderr
    assert not (tmp_path / "hookline.db").exists()


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ('job = "nope"\nevery = "1h"', "schedules[0].job: no job named 'nope' is loaded"),
        (
            'job = "report"\nevery = "1h"\npayload = { pages = 0 }',
            "schedules[0].payload: does not match ReportRequest",
        ),
    ],
)
def test_serve_refuses_a_schedule_of_no_loaded_job_or_a_bad_payload(
    tmp_path: Path, schedule: str, expected: str
) -> None:
    write_config(
        tmp_path,
        '[pipeline]\nhandlers = "tests.e2e.job_handlers"\n'
        f'[[schedules]]\nname = "nightly"\n{schedule}\n',
    )
    result = hookline(tmp_path, "serve", "--port", str(free_port()))
    assert_refused(result, "invalid config", expected)
    assert not (tmp_path / "hookline.db").exists()


def test_missing_config_file_exits_2_saying_what_to_do(tmp_path: Path) -> None:
    advice = (
        "Pass --config FILE, or set HOOKLINE_CONFIG=FILE, or start from the annotated "
        "example: cp hookline.example.toml hookline.toml"
    )
    result = hookline(tmp_path, "migrate", "--config", "nowhere.toml")
    assert_refused(result, "no config file at nowhere.toml (from --config).", advice)
    result = hookline(tmp_path, "events", "list", env={"HOOKLINE_CONFIG": "env.toml"})
    assert_refused(result, "no config file at env.toml (from HOOKLINE_CONFIG).", advice)
    for command in (["migrate"], ["events", "list"], ["replay", "fixtures"]):
        result = hookline(tmp_path, *command)  # no ./hookline.toml either
        assert_refused(result, "no config file at ./hookline.toml (the default).", advice)
    assert list(tmp_path.iterdir()) == []


def test_sqlite_creates_only_the_database_directory_itself(tmp_path: Path) -> None:
    # ./data/hookline.db: data/ is the data directory, made on first use
    (tmp_path / "ok.toml").write_text('[storage]\nurl = "sqlite:///./data/hookline.db"\n')
    result = hookline(tmp_path, "migrate", "--config", "ok.toml")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "hookline.db").is_file()

    # a typo higher up the path creates nothing and says so
    (tmp_path / "typo.toml").write_text('[storage]\nurl = "sqlite:///./dtaa/hookline/x.db"\n')
    for command in ("migrate", "serve", "worker"):
        result = hookline(tmp_path, command, "--config", "typo.toml")
        assert_refused(
            result,
            "invalid config: storage.url: the database directory dtaa/hookline does not exist "
            "and neither does dtaa",
        )
    assert not (tmp_path / "dtaa").exists()

    (tmp_path / "file").write_text("")
    (tmp_path / "file.toml").write_text('[storage]\nurl = "sqlite:///./file/x.db"\n')
    result = hookline(tmp_path, "migrate", "--config", "file.toml")
    assert_refused(result, "storage.url: file is not a directory")


def test_secret_is_not_echoed_in_config_errors(tmp_path: Path) -> None:
    secret = "whsec_c3VwZXItc2VjcmV0"  # valid base64: the error is elsewhere in the source
    write_config(
        tmp_path,
        f'[[sources]]\nname = "acme"\nprovider = "standard"\nsecrets = ["{secret}"]\n'
        "tolerance_seconds = -5\n",
    )
    result = hookline(tmp_path, "migrate")
    message = assert_refused(result, 'sources[0] (name "acme").tolerance_seconds')
    assert secret not in message and "c3VwZXItc2VjcmV0" not in message


HANDLER_FAILURES = {
    "raises-on-import": ("raise RuntimeError('handler module exploded')\n", "exploded"),
    "syntax-error": ("def broken(:\n", "SyntaxError"),
    # a configured secret in the import error is redacted like any text hookline writes
    "quotes-a-secret": ("raise RuntimeError('bad key whsec_cli_test_secret')\n", "key [redacted]"),
}


@pytest.mark.parametrize("case", HANDLER_FAILURES, ids=list(HANDLER_FAILURES))
def test_handler_module_that_fails_to_import_exits_2(tmp_path: Path, case: str) -> None:
    source, expected = HANDLER_FAILURES[case]
    (tmp_path / "my_handlers.py").write_text(source)
    write_config(tmp_path, '[pipeline]\nhandlers = "my_handlers"\nworkers = 0\n' + GOOD_SOURCE)
    result = hookline(tmp_path, "serve", "--port", str(free_port()))
    assert_refused(result, "pipeline.handlers", "my_handlers", expected)
    assert not (tmp_path / "hookline.db").exists()


def test_handler_module_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    write_config(tmp_path, '[pipeline]\nhandlers = ["hookline_no_such_handlers"]\n')
    result = hookline(tmp_path, "serve", "--port", str(free_port()))
    assert_refused(result, "pipeline.handlers", "hookline_no_such_handlers")


def test_config_precedence_flag_then_env_then_cwd(tmp_path: Path) -> None:
    for name in ("flag", "env", "cwd"):
        target = "hookline.toml" if name == "cwd" else f"{name}.toml"
        (tmp_path / target).write_text(f'[storage]\nurl = "sqlite:///./{name}.db"\n')
    databases = ("flag.db", "env.db", "cwd.db")

    def created() -> list[str]:
        found = [db for db in databases if (tmp_path / db).exists()]
        for db in found:
            (tmp_path / db).unlink()
            for suffix in ("-wal", "-shm"):
                (tmp_path / f"{db}{suffix}").unlink(missing_ok=True)
        return found

    env = {"HOOKLINE_CONFIG": "env.toml"}
    result = hookline(tmp_path, "migrate", "--config", "flag.toml", env=env)
    assert result.returncode == 0, result.stderr
    assert "schema at version" in result.stdout
    assert created() == ["flag.db"]

    result = hookline(tmp_path, "migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert created() == ["env.db"]

    result = hookline(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert created() == ["cwd.db"]

    # A bad file named by the flag is an error even when the others are fine.
    (tmp_path / "flag.toml").write_text("[server]\nport = -1\n")
    result = hookline(tmp_path, "migrate", "--config", "flag.toml", env=env)
    assert_refused(result, "server.port")
    assert created() == []
