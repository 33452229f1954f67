"""``hookline.replay``: fixture loading and validation, the re-sign decision, building and sending.

The providers are the ones of the demo config (``hookline.example.toml``), whose
secrets signed ``fixtures/``. The clock is passed in: "stale" is the captured
timestamp plus an hour, never the wall clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from hookline.config import load_settings
from hookline.providers import REDACTED, InvalidSignature, Provider
from hookline.replay import (
    Delivery,
    Fixture,
    FixtureError,
    Outcome,
    Tally,
    default_url,
    find_fixtures,
    fixture_from_event,
    load_fixture,
    parse_fixture,
    prepare,
    resign_reason,
    send,
)
from hookline.sources import build_sources

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
PROVIDERS: dict[str, Provider] = {
    name: source.provider
    for name, source in build_sources(load_settings(ROOT / "hookline.example.toml").sources).items()
}
HOUR = 3600.0
TIMES = "\u00d7".encode()  # the multiplication sign of the Stripe invoice lines


def fixture(relative: str) -> Fixture:
    return load_fixture(FIXTURES / relative)


def captured_at(fx: Fixture) -> float:
    """The signed timestamp of a Stripe, Standard Webhooks or Slack fixture."""
    headers = {k.lower(): v for k, v in fx.headers.items()}
    if "stripe-signature" in headers:
        return float(headers["stripe-signature"].split(",")[0].removeprefix("t="))
    return float(headers.get("webhook-timestamp") or headers["x-slack-request-timestamp"])


def verifies(delivery: Delivery, now: float) -> bool:
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    PROVIDERS[delivery.source].verify(delivery.body, headers, now)
    return True


def tampered(fx: Fixture) -> Fixture:
    body = fx.body.replace(b'"object": "event"', b'"object": "evenT"', 1)
    assert body != fx.body and len(body) == len(fx.body)
    return Fixture(fx.path, fx.source, fx.method, fx.headers, body)


def with_header(fx: Fixture, name: str, value: str) -> Fixture:
    return Fixture(fx.path, fx.source, fx.method, {**fx.headers, name: value}, fx.body)


# -- loading and validation --------------------------------------------------------------------


def test_every_shipped_fixture_loads_with_its_exact_bytes() -> None:
    paths = find_fixtures([FIXTURES])
    assert len(paths) >= 20
    assert paths == sorted(paths)
    assert all(p.suffix == ".json" for p in paths)  # README.md is not a fixture
    for path in paths:
        fx = load_fixture(path)
        raw = json.loads(path.read_text("utf-8"))
        assert fx.source == raw["source"] and fx.method == "POST"
        assert fx.body == raw["body"].encode("utf-8")
    assert TIMES in fixture("stripe/invoice.paid.json").body
    assert "Montréal".encode() in fixture("shopify/orders.create.json").body


def test_find_fixtures_skips_links_out_of_the_directory(tmp_path: Path) -> None:
    tree, outside = tmp_path / "tree", tmp_path / "secret.json"
    tree.mkdir()
    outside.write_text("{}")
    (tree / "a.json").write_text("{}")
    (tree / "inside.json").symlink_to(tree / "a.json")
    (tree / "out.json").symlink_to(outside)
    skipped: list[str] = []
    assert find_fixtures([tree], skipped) == [tree / "a.json", tree / "inside.json"]
    assert skipped == [f"{tree / 'out.json'}: a symbolic link out of {tree}; skipped"]
    assert find_fixtures([tree / "out.json"]) == [tree / "out.json"]  # named: the user's choice


def test_find_fixtures_recurses_sorted_and_keeps_explicit_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("b/2.json", "a/deep/1.json", "a/0.json", "a/notes.txt"):
        (tmp_path / name).write_text("{}")
    explicit = tmp_path / "a" / "notes.txt"
    found = find_fixtures([tmp_path, explicit])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/0.json",
        "a/deep/1.json",
        "b/2.json",
        "a/notes.txt",
    ]
    with pytest.raises(FixtureError, match="no such file or directory"):
        find_fixtures([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"source": "stripe"}', "missing key(s): headers, body"),
        (b'{"source": "", "headers": {}, "body": ""}', "'source'"),
        (b'{"source": "s", "headers": {"a": 1}, "body": ""}', "'headers'"),
        (b'{"source": "s", "headers": [], "body": ""}', "'headers'"),
        (b'{"source": "s", "headers": {}, "body": {"id": 1}}', "'body' must be a string"),
        (b'{"source": "s", "headers": {}, "body": "\\ud800"}', "UTF-8 cannot encode"),
        (b'{"source": "s", "method": "PO ST", "headers": {}, "body": ""}', "'method'"),
    ],
)
def test_invalid_fixture_is_a_clear_error(raw: bytes, message: str) -> None:
    with pytest.raises(FixtureError) as caught:
        parse_fixture(raw, Path("x.json"))
    assert message in str(caught.value)


def test_method_defaults_to_post_and_is_upper_cased() -> None:
    base = {"source": "s", "headers": {}, "body": "{}"}
    assert parse_fixture(json.dumps(base).encode(), Path("x")).method == "POST"
    assert parse_fixture(json.dumps({**base, "method": "put"}).encode(), Path("x")).method == "PUT"


def test_unreadable_file_is_a_fixture_error(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="cannot read"):
        load_fixture(tmp_path)  # a directory


# -- the re-sign decision ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    ["stripe/invoice.paid.json", "standard/invoice.paid.json", "slack/app_mention.json"],
)
def test_stale_signature_is_resigned_fresh_one_is_not(relative: str) -> None:
    fx = fixture(relative)
    provider = PROVIDERS[fx.source]
    at = captured_at(fx)
    assert resign_reason(provider, fx.body, fx.headers, at, force=False) is None
    assert resign_reason(provider, fx.body, fx.headers, at + HOUR, force=False) == "stale"
    assert resign_reason(provider, fx.body, fx.headers, at - HOUR, force=False) == "stale"


def test_redacted_signature_is_resigned_without_the_flag() -> None:
    fx = with_header(fixture("github/push.json"), "X-Hub-Signature-256", REDACTED)
    assert resign_reason(PROVIDERS["github"], fx.body, fx.headers, 0, force=False) == "redacted"
    assert resign_reason(PROVIDERS["github"], fx.body, fx.headers, 0, force=True) == "redacted"


def test_tampered_fixture_is_not_resigned_even_when_stale() -> None:
    fx = tampered(fixture("stripe/invoice.paid.json"))
    provider = PROVIDERS["stripe"]
    with pytest.raises(InvalidSignature):
        provider.verify(fx.body, {k.lower(): v for k, v in fx.headers.items()}, captured_at(fx))
    assert resign_reason(provider, fx.body, fx.headers, captured_at(fx) + HOUR, force=False) is None


def test_missing_signature_is_not_resigned() -> None:
    fx = fixture("github/push.json")
    headers = {k: v for k, v in fx.headers.items() if not k.lower().startswith("x-hub-signature")}
    assert resign_reason(PROVIDERS["github"], fx.body, headers, 0, force=False) is None


def test_resign_flag_forces_even_a_valid_or_tampered_signature() -> None:
    good = fixture("github/push.json")
    bad = tampered(fixture("stripe/invoice.paid.json"))
    assert resign_reason(PROVIDERS["github"], good.body, good.headers, 0, force=True) == "forced"
    assert resign_reason(PROVIDERS["stripe"], bad.body, bad.headers, 0, force=True) == "forced"


# -- building the request ----------------------------------------------------------------------


def test_stale_stripe_fixture_is_resigned_in_place() -> None:
    fx = fixture("stripe/invoice.paid.json")
    now = captured_at(fx) + HOUR
    delivery = prepare(fx, source="stripe", provider=PROVIDERS["stripe"], now=now, force=False)
    assert delivery.resigned == "stale"
    assert delivery.body == fx.body
    assert list(delivery.headers) == list(fx.headers)  # same names, spelling and order
    assert delivery.headers["Stripe-Signature"].startswith(f"t={int(now)},v1=")
    assert verifies(delivery, now)


def test_standard_webhooks_keeps_the_captured_id() -> None:
    fx = fixture("standard/invoice.paid.json")
    now = captured_at(fx) + HOUR
    delivery = prepare(fx, source="acme", provider=PROVIDERS["acme"], now=now, force=False)
    assert delivery.resigned == "stale"
    assert delivery.headers["webhook-id"] == fx.headers["webhook-id"]
    assert delivery.headers["webhook-timestamp"] == str(int(now))
    assert verifies(delivery, now)


def test_slack_timestamp_header_is_replaced() -> None:
    fx = fixture("slack/app_mention.json")
    now = captured_at(fx) + HOUR
    delivery = prepare(fx, source="slack", provider=PROVIDERS["slack"], now=now, force=False)
    stamps = [v for k, v in delivery.headers.items() if k.lower() == "x-slack-request-timestamp"]
    assert stamps == [str(int(now))]
    assert verifies(delivery, now)


def test_valid_fixture_is_sent_as_captured_minus_connection_headers() -> None:
    fx = fixture("github/push.json")
    extra = {"Host": "example.com", "Content-Length": "1", "Connection": "close"}
    fx = Fixture(fx.path, fx.source, fx.method, {**fx.headers, **extra}, fx.body)
    delivery = prepare(fx, source="github", provider=PROVIDERS["github"], now=0, force=False)
    assert delivery.resigned is None
    assert delivery.headers == {k: v for k, v in fx.headers.items() if k not in extra}


def test_tampered_fixture_is_sent_unchanged() -> None:
    fx = tampered(fixture("stripe/invoice.paid.json"))
    delivery = prepare(
        fx, source="stripe", provider=PROVIDERS["stripe"], now=captured_at(fx) + HOUR, force=False
    )
    assert delivery.resigned is None
    assert delivery.headers == fx.headers and delivery.body == fx.body


def test_exported_event_round_trips_to_a_resigned_request() -> None:
    fx = fixture("github/pull_request.opened.json")
    stored = {k.lower(): v for k, v in fx.headers.items()}
    for name in ("x-hub-signature-256", "x-hub-signature", "authorization"):
        stored[name] = REDACTED
    stored |= {"host": "127.0.0.1:8400", "content-length": str(len(fx.body))}
    exported = fixture_from_event("github", stored, fx.body)
    assert "host" not in exported["headers"] and "content-length" not in exported["headers"]
    assert exported["method"] == "POST" and exported["body"] == fx.body.decode()

    loaded = parse_fixture(json.dumps(exported, ensure_ascii=False).encode(), Path("e.json"))
    delivery = prepare(loaded, source="github", provider=PROVIDERS["github"], now=0, force=False)
    assert delivery.resigned == "redacted"
    assert REDACTED not in delivery.headers.values()  # no redacted header is ever sent
    assert "authorization" not in delivery.headers
    assert verifies(delivery, 0)


def test_non_utf8_body_cannot_be_exported() -> None:
    with pytest.raises(FixtureError, match="not UTF-8"):
        fixture_from_event("s", {}, b"\xff")


def test_source_override_and_unconfigured_source() -> None:
    fx = fixture("github/push.json")
    delivery = prepare(fx, source="elsewhere", provider=None, now=0, force=False)
    assert delivery.source == "elsewhere" and delivery.resigned is None
    with pytest.raises(FixtureError, match="not in the config"):
        prepare(fx, source="elsewhere", provider=None, now=0, force=True)


# -- sending -----------------------------------------------------------------------------------


def _delivery() -> Delivery:
    return Delivery("stripe", "POST", {"X-Test": "1"}, TIMES, None)


def _client(answer: httpx.Response | Exception, seen: list[httpx.Request]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            httpx.Response(200, json={"id": "evt_1", "eventId": "e1", "duplicate": False}),
            Outcome(200, event_id="e1", duplicate=False),
        ),
        (
            httpx.Response(200, json={"id": "evt_1", "eventId": "e1", "duplicate": True}),
            Outcome(200, event_id="e1", duplicate=True),
        ),
        (
            httpx.Response(400, json={"error": "invalid_signature", "detail": "no match"}),
            Outcome(400, error="invalid_signature", detail="no match"),
        ),
        (httpx.Response(502, text="<html>"), Outcome(502, error="http_502", detail="Bad Gateway")),
        (httpx.ConnectError("refused"), Outcome(None, error="connection_error", detail="refused")),
    ],
)
def test_send(answer: Any, expected: Outcome) -> None:
    seen: list[httpx.Request] = []
    with _client(answer, seen) as client:
        outcome = send(client, "http://hook.example:8400/", _delivery())
    assert outcome == expected
    assert outcome.ok is (expected.status == 200)
    (request,) = seen
    assert str(request.url) == "http://hook.example:8400/webhooks/stripe"
    assert request.method == "POST"
    assert request.content == TIMES
    assert request.headers["x-test"] == "1"


def test_tally() -> None:
    tally = Tally()
    for outcome in (
        Outcome(200, event_id="a", duplicate=False),
        Outcome(200, event_id="b", duplicate=True),
        Outcome(400, error="invalid_signature"),
        Outcome(None, error="connection_error"),
        None,
    ):
        tally.add(outcome)
    assert tally == Tally(fixtures=5, sent=4, accepted=1, duplicate=1, failed=3)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8400"),
        ("0.0.0.0", "http://127.0.0.1:8400"),
        ("::", "http://[::1]:8400"),
        ("fe80::1", "http://[fe80::1]:8400"),
        ("hooks.internal", "http://hooks.internal:8400"),
    ],
)
def test_default_url(host: str, url: str) -> None:
    assert default_url(host, 8400) == url


@pytest.mark.parametrize(
    ("answer", "handshake"),
    [({"challenge": "abc"}, True), ({}, True), ({"status": "ok"}, False), ({"id": 1}, False)],
)
def test_only_a_slack_shaped_200_without_an_event_is_a_handshake(
    answer: dict[str, Any], handshake: bool
) -> None:
    """Slack's url_verification ({"challenge"}) and ssl_check ({}) are answered 200 and
    stored nowhere; any other 200 without an eventId (a --url that points at another app)
    is a failure, not an accepted fixture."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    delivery = Delivery("slack", "POST", {}, b"{}", None)
    with httpx.Client(transport=transport) as client:
        outcome = send(client, "http://127.0.0.1:1", delivery)
    assert (outcome.ok, outcome.handshake) == (handshake, handshake)
