"""``hookline replay`` as a process against a real ``hookline serve`` with the demo config.

The server runs ``hookline.example.toml`` itself (the secrets that signed
``fixtures/``), changed only where a test must: a temporary SQLite file, a free
port, no handlers and no workers. ``replay`` finds the server from that config.
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hookline.config import load_settings
from hookline.providers import StaleTimestamp
from hookline.sources import build_sources
from tests.support.cli import hookline, replay_lines, summary
from tests.support.server import ROOT, HooklineProcess, demo_config, free_port

FIXTURES = ROOT / "fixtures"
ALL = sorted(FIXTURES.rglob("*.json"))
STRIPE_INVOICE = FIXTURES / "stripe" / "invoice.paid.json"


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[HooklineProcess]:
    proc = HooklineProcess(tmp_path, "")
    proc.config_path.write_text(demo_config(f"sqlite:///{tmp_path / 'demo.db'}", proc.port))
    proc.start()
    yield proc
    proc.stop()


def replay(server: HooklineProcess, *args: str | Path) -> tuple[int, dict[str, str], str]:
    result = hookline("replay", *args, "--config", server.config_path)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result.returncode, replay_lines(result.stdout), summary(result.stdout)


def test_fixtures_are_accepted_then_duplicates_and_tampering_fails(
    demo_server: HooklineProcess, tmp_path: Path
) -> None:
    code, lines, total = replay(demo_server, FIXTURES)
    assert code == 0, lines
    assert sorted(lines) == [str(p) for p in ALL]  # one line per fixture, in path order
    for path in ALL:
        source = json.loads(path.read_text("utf-8"))["source"]
        fields = lines[str(path)].split("  ")
        assert fields[1:3] == [source, "200"], lines[str(path)]
        assert fields[4] == "duplicate=false", lines[str(path)]
    assert (
        total
        == f"{len(ALL)} fixture(s): sent {len(ALL)}, accepted {len(ALL)}, duplicate 0, failed 0"
    )

    code, lines, total = replay(demo_server, FIXTURES)
    assert code == 0
    assert all("  200  " in line and "duplicate=true" in line for line in lines.values()), lines
    assert total.endswith(f"accepted 0, duplicate {len(ALL)}, failed 0")

    # A tampered Stripe fixture (one byte of the body changed) among good and broken ones.
    bad = tmp_path / "replays"
    bad.mkdir()
    original = json.loads(STRIPE_INVOICE.read_text("utf-8"))
    body = original["body"].replace('"object": "event"', '"object": "evenT"', 1)
    assert body != original["body"] and len(body.encode()) == len(original["body"].encode())
    (bad / "tampered.json").write_text(json.dumps({**original, "body": body}), "utf-8")
    shutil.copy(FIXTURES / "github" / "push.json", bad / "push.json")
    (bad / "broken.json").write_text('{"source": "stripe", ', "utf-8")
    (bad / "nokeys.json").write_text('{"source": "stripe"}', "utf-8")

    code, lines, total = replay(demo_server, bad)
    assert code == 1
    # Sent as captured (never re-signed: its signature does not match), it is refused; its
    # old signed timestamp already condemns it from the headers, before the body is read.
    fields = lines[str(bad / "tampered.json")].split("  ")
    assert fields[1:3] == ["stripe", "400"]
    assert fields[3].startswith("stale_timestamp: "), fields
    assert "re-signed" not in lines[str(bad / "tampered.json")]
    assert lines[str(bad / "push.json")].endswith("duplicate=true")
    assert "invalid_fixture: not valid JSON" in lines[str(bad / "broken.json")]
    assert "invalid_fixture: missing key(s): headers, body" in lines[str(bad / "nokeys.json")]
    assert total == "4 fixture(s): sent 2, accepted 0, duplicate 1, failed 3"


def test_stale_fixture_is_resigned_without_the_flag(demo_server: HooklineProcess) -> None:
    # The captured signature is valid, only too old: the server alone would refuse it.
    stripe = build_sources(load_settings(demo_server.config_path).sources)["stripe"].provider
    captured = json.loads(STRIPE_INVOICE.read_text("utf-8"))
    headers = {k.lower(): v for k, v in captured["headers"].items()}
    with pytest.raises(StaleTimestamp):
        stripe.verify(captured["body"].encode(), headers, time.time())

    code, lines, _ = replay(demo_server, STRIPE_INVOICE)
    assert code == 0, lines
    line = lines[str(STRIPE_INVOICE)]
    assert "  200  evt_1t7tUyyX8w4VGyz3BpfgXDpE  duplicate=false" in line
    assert line.endswith("re-signed (stale)")

    # GitHub signatures never go stale; --resign signs them afresh anyway.
    push = FIXTURES / "github" / "push.json"
    code, lines, _ = replay(demo_server, push, "--resign")
    assert code == 0 and lines[str(push)].endswith("duplicate=false  re-signed (forced)")
    token = tomllib.loads(demo_server.config_path.read_text())["admin"]["token"]
    answer = httpx.get(
        f"{demo_server.url}/admin/events", headers={"Authorization": f"Bearer {token}"}
    )
    items = answer.json()["items"]
    assert sorted(item["source"] for item in items) == ["github", "stripe"]


def test_url_and_source_options(demo_server: HooklineProcess) -> None:
    ping = FIXTURES / "github" / "ping.json"
    code, lines, _ = replay(demo_server, ping, "--url", demo_server.url + "/", "--source", "nosuch")
    assert code == 1
    assert lines[str(ping)].split("  ")[1:4] == [
        "nosuch",
        "404",
        "unknown_source: no source with this name",
    ]

    code, lines, total = replay(demo_server, ping, "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert "---  connection_error" in lines[str(ping)]
    assert total == "1 fixture(s): sent 1, accepted 0, duplicate 0, failed 1"


def test_usage_errors(tmp_path: Path) -> None:
    config = tmp_path / "demo.toml"
    config.write_text(demo_config(f"sqlite:///{tmp_path / 'demo.db'}", free_port()))
    missing = hookline("replay", tmp_path / "nope", "--config", config)
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = hookline("replay", empty, "--config", config)
    assert nothing.returncode == 2 and "no fixture files" in nothing.stderr
    bad_url = hookline("replay", FIXTURES, "--url", "localhost:1", "--config", config)
    assert bad_url.returncode == 2 and "--url" in bad_url.stderr
    for url in ["http://127.0.0.1:abc", "http://[::1"]:  # http, and still no URL
        bad_port = hookline("replay", FIXTURES, "--url", url, "--config", config)
        assert bad_port.returncode == 2 and "--url is not a valid URL" in bad_port.stderr
        assert "Traceback" not in bad_port.stderr
    with_query = hookline(
        "replay", FIXTURES, "--url", "http://127.0.0.1:1/?x=1", "--config", config
    )
    assert with_query.returncode == 2 and "no ?query or #fragment" in with_query.stderr
    no_config = hookline("replay", FIXTURES, "--config", tmp_path / "missing.toml")
    assert no_config.returncode == 2 and "no config file at" in no_config.stderr


def test_a_slack_handshake_answered_is_no_failure(
    demo_server: HooklineProcess, tmp_path: Path
) -> None:
    """url_verification and ssl_check are verified and answered 200 without an event id
    (stored nowhere, by design): replay counted them as failed and exited 1."""
    bodies = {
        "challenge.json": {"type": "url_verification", "challenge": "abc123", "token": "t"},
        "ssl_check.json": None,
    }
    for name, body in bodies.items():
        fixture = {"source": "slack", "method": "POST"}
        if body is None:
            fixture |= {"headers": {"content-type": "application/x-www-form-urlencoded"},
                        "body": "ssl_check=1&token=t"}  # fmt: skip
        else:
            fixture |= {"headers": {"content-type": "application/json"}, "body": json.dumps(body)}
        (tmp_path / name).write_text(json.dumps(fixture))
    code, lines, total = replay(
        demo_server, tmp_path / "challenge.json", tmp_path / "ssl_check.json", "--resign"
    )
    assert code == 0, lines
    assert all("200  handshake answered" in line for line in lines.values()), lines
    assert total == "2 fixture(s): sent 2, accepted 2, duplicate 0, failed 0"
