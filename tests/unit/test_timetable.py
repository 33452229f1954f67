"""When schedules tick: ``every`` on the epoch, cron on a zone's wall clock, DST both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st

from hookline.timetable import Cron, Every, iso, parse_duration, ticks_between, zone

BERLIN = zone("Europe/Berlin")
NEW_YORK = zone("America/New_York")


def at(tz: object, *parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=tz, fold=fold).timestamp()  # type: ignore[arg-type,misc]


def walk(timetable: Cron | Every, start: float, end: float) -> list[datetime]:
    """Every tick in (start, end], as aware datetimes in the cron's zone (or UTC)."""
    tz = timetable.tz if isinstance(timetable, Cron) else UTC
    found, t = [], start
    while (t := timetable.next_after(t)) <= end:
        found.append(datetime.fromtimestamp(t, tz))
    return found


def test_every_is_aligned_to_the_unix_epoch() -> None:
    every = Every(30)
    assert every.next_after(0) == 30
    assert every.next_after(59.999) == 60
    assert every.next_after(60) == 90  # strictly after
    assert every.latest_at(60) == 60
    assert every.latest_at(89.5) == 60
    assert ticks_between(Every(1), 100.5, 105, 10) == [101, 102, 103, 104, 105]
    assert ticks_between(Every(30), 0, 100, 2) == [60, 90]  # the newest, oldest first


def test_durations() -> None:
    assert [parse_duration(d) for d in ("30s", "5m", "2h", "1d")] == [30, 300, 7200, 86400]
    for bad in ("", "0s", "1", "1w", "1.5h", "-1s", "s", "1 h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_zone_names_are_checked() -> None:
    assert zone("America/New_York").key == "America/New_York"
    for bad in ("Mars/Base", "", "../etc/passwd", "Europe/"):
        with pytest.raises(ValueError, match="unknown time zone"):
            zone(bad)


@pytest.mark.parametrize(
    "expression", ["* * *", "61 * * * *", "0 0 30 2 *", "* * * * * * *", "0 0 * * MON#9"]
)
def test_bad_cron_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        Cron(expression, BERLIN)


def test_six_fields_put_seconds_first() -> None:
    cron = Cron("15,45 * * * * *", zone("UTC"))
    start = at(UTC, 2026, 1, 1, 0, 0, 0)
    assert [t.second for t in walk(cron, start, start + 60)] == [15, 45]


def test_cron_follows_its_zones_wall_clock() -> None:
    cron = Cron("0 3 * * *", BERLIN)
    ticks = walk(cron, at(BERLIN, 2026, 1, 10, 12), at(BERLIN, 2026, 1, 12, 12))
    assert [t.isoformat() for t in ticks] == [
        "2026-01-11T03:00:00+01:00",
        "2026-01-12T03:00:00+01:00",
    ]


def test_cron_in_utc_matches_cronsim() -> None:
    """With no DST in play, our stepping is cronsim's."""
    utc = zone("UTC")
    for expression in ("*/7 * * * *", "0 9 * * MON-FRI", "30 */5 * * * *", "0 0 L * *"):
        start = datetime(2026, 2, 27, 22, 0, tzinfo=utc)
        oracle = CronSim(expression, start)
        expected = [next(oracle) for _ in range(20)]
        cron = Cron(expression, utc)
        assert walk(cron, start.timestamp(), expected[-1].timestamp()) == expected


# -- daylight saving time ------------------------------------------------------------------
# Europe/Berlin: 2025-03-30 02:00 → 03:00 (gap); 2025-10-26 03:00 → 02:00 (02:xx twice).
# America/New_York: 2025-03-09 02:00 → 03:00 (gap); 2025-11-02 02:00 → 01:00 (01:xx twice).

GAPS = [
    (BERLIN, "30 2 * * *", (2025, 3, 30), "2025-03-30T03:00:00+02:00"),
    (BERLIN, "0 30 2 * * *", (2025, 3, 30), "2025-03-30T03:00:00+02:00"),
    (BERLIN, "0 2 * * *", (2025, 3, 30), "2025-03-30T03:00:00+02:00"),
    (NEW_YORK, "30 2 * * *", (2025, 3, 9), "2025-03-09T03:00:00-04:00"),
    (NEW_YORK, "0 30 2 * * *", (2025, 3, 9), "2025-03-09T03:00:00-04:00"),
    (NEW_YORK, "59 2 * * *", (2025, 3, 9), "2025-03-09T03:00:00-04:00"),
]


@pytest.mark.parametrize(("tz", "expression", "day", "fires"), GAPS)
def test_a_wall_time_in_the_gap_fires_once_at_the_first_instant_after_it(
    tz: object, expression: str, day: tuple[int, int, int], fires: str
) -> None:
    cron = Cron(expression, tz)  # type: ignore[arg-type]
    ticks = walk(cron, at(tz, *day, 0), at(tz, *day, 23, 59))
    assert [t.isoformat() for t in ticks] == [fires]
    # ... and the days around it are ordinary: one tick each, at the wall time
    week = walk(cron, at(tz, *day, 0) - 3 * 86400, at(tz, *day, 0) + 4 * 86400)
    assert len(week) == 7
    assert len({(t.hour, t.minute) for t in week if t.day != day[2]}) == 1


REPEATS = [
    (BERLIN, "30 2 * * *", (2025, 10, 26), "2025-10-26T02:30:00+02:00"),
    (BERLIN, "0 30 2 * * *", (2025, 10, 26), "2025-10-26T02:30:00+02:00"),
    (NEW_YORK, "30 1 * * *", (2025, 11, 2), "2025-11-02T01:30:00-04:00"),
    (NEW_YORK, "0 30 1 * * *", (2025, 11, 2), "2025-11-02T01:30:00-04:00"),
    (NEW_YORK, "0 1 * * *", (2025, 11, 2), "2025-11-02T01:00:00-04:00"),
]


@pytest.mark.parametrize(("tz", "expression", "day", "fires"), REPEATS)
def test_a_wall_time_of_the_repeated_hour_fires_once_the_first_time(
    tz: object, expression: str, day: tuple[int, int, int], fires: str
) -> None:
    cron = Cron(expression, tz)  # type: ignore[arg-type]
    ticks = walk(cron, at(tz, *day, 0), at(tz, *day, 23, 59))
    assert [t.isoformat() for t in ticks] == [fires]


def test_from_the_second_pass_of_the_repeated_hour_the_first_pass_is_past() -> None:
    cron = Cron("30 2 * * *", BERLIN)
    second_pass = at(BERLIN, 2025, 10, 26, 2, 40, fold=1)
    assert datetime.fromtimestamp(cron.latest_at(second_pass) or 0, BERLIN).isoformat() == (
        "2025-10-26T02:30:00+02:00"
    )
    assert datetime.fromtimestamp(cron.next_after(second_pass), BERLIN).isoformat() == (
        "2025-10-27T02:30:00+01:00"
    )


def test_two_wall_times_in_one_gap_fire_once() -> None:
    cron = Cron("0,30 2 * * *", NEW_YORK)
    ticks = walk(cron, at(NEW_YORK, 2025, 3, 9, 0), at(NEW_YORK, 2025, 3, 9, 23))
    assert [t.isoformat() for t in ticks] == ["2025-03-09T03:00:00-04:00"]


def test_frequent_expressions_follow_the_wall_clock_through_both_transitions() -> None:
    half_hourly = Cron("*/30 * * * *", BERLIN)
    spring = walk(half_hourly, at(BERLIN, 2025, 3, 30, 1), at(BERLIN, 2025, 3, 30, 4))
    assert [t.strftime("%H:%M%z") for t in spring] == [
        "01:30+0100",
        "03:00+0200",
        "03:30+0200",
        "04:00+0200",
    ]  # fmt: skip  (02:00 and 02:30 are in the gap: the one instant after it, 03:00)
    autumn = walk(half_hourly, at(BERLIN, 2025, 10, 26, 1), at(BERLIN, 2025, 10, 26, 4))
    assert [t.strftime("%H:%M%z") for t in autumn] == [
        "01:30+0200",
        "02:00+0200",
        "02:30+0200",
        "03:00+0100",
        "03:30+0100",
        "04:00+0100",
    ]  # fmt: skip  (the repeated 02:xx fire the first time only)


@pytest.mark.parametrize("expression", ["0 * * * *", "0 0 * * * *", "0 */2 * * *"])
def test_an_hourly_wall_time_of_the_repeated_hour_fires_once(expression: str) -> None:
    cron = Cron(expression, NEW_YORK)
    ticks = walk(cron, at(NEW_YORK, 2025, 11, 2, 0, 30), at(NEW_YORK, 2025, 11, 2, 2, 30))
    assert "01:00-0500" not in [t.strftime("%H:%M%z") for t in ticks]  # the second 01:00
    assert len({t.strftime("%H:%M") for t in ticks}) == len(ticks)  # no wall time twice


def test_every_wall_time_of_a_gap_is_the_one_instant_after_it() -> None:
    cron = Cron("*/15 * * * *", NEW_YORK)
    ticks = walk(cron, at(NEW_YORK, 2025, 3, 9, 1, 50), at(NEW_YORK, 2025, 3, 9, 3, 20))
    assert [t.strftime("%H:%M%z") for t in ticks] == ["03:00-0400", "03:15-0400"]


EXPRESSIONS = [
    "30 2 * * *", "0 30 1 * * *", "*/20 * * * *", "0 * * * *", "15 */7 * * * *", "*/10 * * * * *",
]  # fmt: skip
# 2025 around both transitions of both zones
START, END = at(UTC, 2025, 3, 1), at(UTC, 2025, 11, 30)


@settings(max_examples=300, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    tz=st.sampled_from([BERLIN, NEW_YORK]),
    t=st.floats(START, END) | st.sampled_from([at(BERLIN, 2025, 10, 26, 2, 30, fold=1)]),
)
def test_latest_at_and_next_after_agree(expression: str, tz: object, t: float) -> None:
    cron = Cron(expression, tz)  # type: ignore[arg-type]
    latest, following = cron.latest_at(t), cron.next_after(t)
    assert latest is not None and latest <= t < following
    assert cron.next_after(latest) == following  # nothing in between
    assert cron.latest_at(following) == following


def test_iso() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1774746000) == "2026-03-29T01:00:00.000Z"
