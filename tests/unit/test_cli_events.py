"""``hookline.cli_events.parse_duration``: the ``--older-than`` of ``hookline prune``."""

from __future__ import annotations

import pytest

from hookline.cli_events import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("90s", 90), ("15m", 900), ("12h", 43_200), ("30d", 2_592_000), (" 1d ", 86_400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "30", "d", "1.5h", "-1d", "1w", "1 d", "1D", "1h30m", "\uff13d"]
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["365001d", "750000d", "999999999999s"])
def test_an_age_beyond_any_event_is_refused_not_a_crash(text: str) -> None:
    with pytest.raises(ValueError, match="more than 1000 years"):
        parse_duration(text)
    assert parse_duration("365000d") == 365_000 * 86_400
