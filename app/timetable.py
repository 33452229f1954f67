"""When a schedule ticks: ``every = "30s"`` on the Unix epoch, or a cron expression on a
time zone's wall clock. Pure: instants in, instants out (Unix seconds; ticks are whole).

Cron expressions are parsed and stepped by ``cronsim``, over naive wall times; each wall
time is mapped to its instant here. Every expression follows the **wall clock** through
daylight saving time, frequent ones included:

- a wall time inside a gap (clocks spring forward) fires once, at the first instant after
  the gap; several wall times of one gap (``*/15 * * * *``: 02:00, 02:15 …) are that one
  instant, hence one tick;
- a wall time of a repeated hour (clocks fall back) fires once, the first time it occurs:
  ``*/15 * * * *`` fires through the first pass of the hour and not in the second.

(Debian's cron keeps expressions without a specific minute and hour on real time instead;
hookline's contract is the wall clock for all, so a schedule's ticks are the wall times
its expression names, each once.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

_DURATION = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
# Longest stretch of wall time repeated by a transition (Antarctica/Troll: 2 h), with room.
_MAX_FOLD = timedelta(hours=3)


class Timetable(Protocol):
    def next_after(self, t: float) -> int:
        """The first tick strictly after instant ``t``."""
        ...

    def latest_at(self, t: float) -> int | None:
        """The newest tick at or before instant ``t`` (None: none in 50 years)."""
        ...


def parse_duration(text: str) -> int:
    """``30s``, ``5m``, ``2h``, ``1d`` → seconds (a whole positive number and one unit)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 30s, 5m, 2h or 1d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; ValueError names it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name, e.g. Europe/Berlin)"
        ) from None


@dataclass(frozen=True, slots=True)
class Every:
    """Every ``seconds``, aligned to the Unix epoch: ``30s`` fires at :00 and :30."""

    seconds: int

    def next_after(self, t: float) -> int:
        return (math.floor(t) // self.seconds + 1) * self.seconds

    def latest_at(self, t: float) -> int | None:
        return math.floor(t) // self.seconds * self.seconds


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall time → its instant: the first of a repeated time; for a time inside a
    gap, the first instant after the gap (where the clock jumped to)."""
    first = wall.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap. fold=1 maps it with the offset after the jump (an instant before it),
    # fold=0 with the offset before (an instant after it): the jump lies between.
    lo = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    hi = math.ceil(first.timestamp())
    before = first.utcoffset()
    while hi - lo > 1:  # the first whole second whose offset is the new one
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, tz)


class Cron:
    """A 5-field cron expression (6 fields: seconds first) in a time zone."""

    def __init__(self, expression: str, tz: ZoneInfo) -> None:
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise ValueError(f"{expression!r} has {len(fields)} fields; cron has 5 (or 6)")
        self.expression = expression
        self.tz = tz
        try:
            CronSim(expression, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"{expression!r}: {str(exc).lower()}") from None
        self.next_after(0)  # raises if it never fires

    def _walk(self, start: datetime, reverse: bool = False) -> CronSim:
        return CronSim(self.expression, start, reverse=reverse)

    def next_after(self, t: float) -> int:
        moment = datetime.fromtimestamp(math.floor(t), self.tz)
        try:
            # Wall times from the wall time of t on; the first whose instant is after t
            # (t may lie in the second pass of a repeated hour, whose wall times map to
            # their first pass).
            for wall in self._walk(moment.replace(tzinfo=None)):
                instant = _instant(wall, self.tz).timestamp()
                if instant > t:
                    return int(instant)
        except StopIteration:
            pass
        raise ValueError(f"{self.expression!r} does not fire within 50 years")

    def latest_at(self, t: float) -> int | None:
        moment = datetime.fromtimestamp(math.floor(t) + 1, self.tz)
        try:
            # Wall times up to t's map to instants up to t, later ones to later instants,
            # except in the second pass of a repeated hour (fold 1): there, wall times up to
            # one fold later than t's were passed already. Starting beyond them only then
            # keeps a per-second expression to a step or two here, not a fold's 10,800.
            start = moment.replace(tzinfo=None) + (_MAX_FOLD if moment.fold else timedelta(0))
            for wall in self._walk(start, reverse=True):
                instant = _instant(wall, self.tz).timestamp()
                if instant <= t:
                    return int(instant)
        except StopIteration:
            pass
        return None


def ticks_between(timetable: Timetable, after: float, until: float, limit: int) -> list[int]:
    """The newest ``limit`` ticks in ``(after, until]``, oldest first."""
    found: list[int] = []
    tick = timetable.latest_at(until)
    while tick is not None and tick > after and len(found) < limit:
        found.append(tick)
        tick = timetable.latest_at(tick - 1)
    found.reverse()
    return found


def iso(tick: float) -> str:
    """A tick as ISO-8601 UTC, as every time hookline shows (milliseconds, ``Z``)."""
    text = datetime.fromtimestamp(tick, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
