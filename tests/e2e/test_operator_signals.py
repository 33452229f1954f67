"""What an operator sees: a dead-lettered run logged as a warning with its handler,
attempts and the error's first line; a rejected webhook logged with its error code and
never its signature; ``hookline --version``; ``serve --help`` printing config table
names such as ``[server]`` as written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import hookline
from tests.support import signing
from tests.support.cli import hookline as run_cli
from tests.support.clients import post_stripe, wait_for, wait_status
from tests.support.server import STRIPE_SECRET, HooklineProcess, base_config


def log_lines(server: HooklineProcess) -> list[dict[str, Any]]:
    lines = []
    for line in server.logs().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[HooklineProcess]:
    config = base_config(
        sqlite_url,
        handlers=["tests.e2e.failing_handlers"],
        workers=1,
        pipeline={"lease_seconds": 2},
    )
    env = {"HOOKLINE_TEST_LEAKED": STRIPE_SECRET}
    proc = HooklineProcess(tmp_path, config, env=env).start()
    yield proc
    proc.stop()


def test_a_dead_lettered_run_is_a_warning_with_handler_attempts_and_first_line(
    server: HooklineProcess,
) -> None:
    with server.admin() as admin:
        event_id = post_stripe(server, "evt_leaky", "test.leaky")["id"]
        (run,) = wait_status(admin, event_id, "failed")["runs"]

    def dead_letter() -> dict[str, Any] | None:
        found = [e for e in log_lines(server) if e["msg"] == "run dead-lettered"]
        return found[0] if found else None

    entry = wait_for(dead_letter, what="the dead-letter log line")
    assert entry["level"] == "warning"
    assert (entry["run_id"], entry["handler"]) == (run["id"], "tests.e2e.failing_handlers:leaky")
    assert entry["attempts"] == 2 == run["attempts"]
    assert entry["error"] == "RuntimeError: upstream refused the call (api key [redacted])"
    # the earlier, retried attempt is an ordinary info line
    retried = [e for e in log_lines(server) if e["msg"] == "run" and e["run_id"] == run["id"]]
    assert [(e["level"], e["status"]) for e in retried] == [("info", "retrying")]
    assert STRIPE_SECRET not in server.logs()


def test_a_handlers_warning_is_a_json_log_line_without_the_secret(
    server: HooklineProcess,
) -> None:
    with server.admin() as admin:
        wait_status(admin, post_stripe(server, "evt_warns", "test.warns")["id"], "succeeded")
    (entry,) = [e for e in log_lines(server) if e["logger"] == "py.warnings"]
    assert entry["level"] == "warning"
    assert "UserWarning: deprecated client option (api key [redacted])" in entry["msg"]
    assert STRIPE_SECRET not in server.logs()
    assert all(line.startswith("{") for line in server.logs().splitlines() if line.strip())


def test_a_run_whose_attempts_all_killed_their_worker_fails_counting_only_those(
    server: HooklineProcess,
) -> None:
    """Its one attempt killed the worker; the restarted worker reclaims the run after the
    lease, finds its budget spent and fails it, calling nothing: attempts stays 1, in the
    admin API and in the log."""
    with server.admin() as admin:
        event_id = post_stripe(server, "evt_fatal", "test.fatal_step")["id"]
        (run,) = wait_status(admin, event_id, "failed", timeout=60)["runs"]
    assert run["attempts"] == 1 and "ended without an outcome" in run["error"]

    def dead_letter() -> dict[str, Any] | None:
        found = [
            e for e in log_lines(server)
            if e["msg"] == "run dead-lettered" and e["run_id"] == run["id"]
        ]  # fmt: skip
        return found[0] if found else None

    assert wait_for(dead_letter, what="the dead-letter log line")["attempts"] == 1


def test_a_rejected_webhook_is_logged_with_its_error_code_not_its_signature(
    server: HooklineProcess,
) -> None:
    body, headers = signing.stripe()
    response = httpx.post(
        f"{server.url}/webhooks/stripe", content=body + b" ", headers=headers, timeout=10
    )
    assert response.status_code == 400

    def rejected() -> dict[str, Any] | None:
        found = [e for e in log_lines(server) if e["msg"] == "webhook" and e["status"] == 400]
        return found[0] if found else None

    entry = wait_for(rejected, what="the webhook log line")
    assert entry["level"] == "info"
    assert (entry["error"], entry["outcome"]) == ("invalid_signature", "invalid_signature")
    assert entry["detail"] == response.json()["detail"]
    signature = headers["Stripe-Signature"]
    assert signature not in server.logs()
    assert signature.split("v1=")[1] not in server.logs()


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"hookline {hookline.__version__}"


def test_serve_help_prints_config_table_names_as_written() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # help text wraps at the terminal width
    assert "(overrides [server] host)" in text
    assert "(overrides [server] port)" in text
    assert "([pipeline] workers)" in text
    # no promise of what does not exist: jobs only once hookline has a jobs command
    commands = run_cli("--help").stdout.split("Commands:")[1].split()
    assert ("jobs" in text.lower()) == ("jobs" in commands)
    assert "migrations are applied first" in text
