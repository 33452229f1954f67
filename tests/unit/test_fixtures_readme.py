"""fixtures/README.md tells the truth about the shipped fixtures: each verifies with the
demo config's secrets at its captured time, its file is named after the event type
hookline derives from it except where the README says otherwise, and the README's
count of events is the number of distinct event ids."""

from __future__ import annotations

import re
from pathlib import Path

from hookline.config import load_settings
from hookline.providers import Verified
from hookline.replay import Fixture, find_fixtures, load_fixture
from hookline.sources import build_sources

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
README = (FIXTURES / "README.md").read_text("utf-8")
SOURCES = build_sources(load_settings(ROOT / "hookline.example.toml").sources)


def captured_at(fx: Fixture) -> float:
    headers = {k.lower(): v for k, v in fx.headers.items()}
    if "stripe-signature" in headers:
        return float(headers["stripe-signature"].split(",")[0].removeprefix("t="))
    stamp = headers.get("webhook-timestamp") or headers.get("x-slack-request-timestamp")
    return float(stamp) if stamp else 0.0  # GitHub and Shopify sign no timestamp


def verified() -> dict[str, Verified]:
    out = {}
    for path in find_fixtures([FIXTURES]):
        fx = load_fixture(path)
        headers = {k.lower(): v for k, v in fx.headers.items()}
        result = SOURCES[fx.source].provider.verify(fx.body, headers, captured_at(fx))
        assert isinstance(result, Verified), path
        out[path.relative_to(FIXTURES).as_posix()] = result
    return out


def test_file_names_are_the_event_types_except_where_the_readme_says() -> None:
    named_otherwise = {
        path: event_type
        for path, event_type in re.findall(
            r"`([\w./-]+\.json)`\s+is\s+stored\s+as\s+type\s+`([^`]+)`", README
        )
    }
    actual = {path: v.event_type for path, v in verified().items()}
    mismatched = {p: t for p, t in actual.items() if Path(p).stem != t}
    assert mismatched == named_otherwise
    assert named_otherwise  # the README does name the exception(s) it has


def test_the_readme_counts_the_events_replay_stores() -> None:
    ids = {(load_fixture(FIXTURES / p).source, v.event_id) for p, v in verified().items()}
    assert len(ids) == len(verified())  # no fixture is a duplicate of another
    (stated,) = re.findall(r"replaying the whole folder stores (\d+) events", README)
    assert int(stated) == len(ids)
