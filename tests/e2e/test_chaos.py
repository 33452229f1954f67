"""A smaller chaos run in ``make test``: 2 ``serve`` + 3 ``hookline worker`` processes on
PostgreSQL, 1,000 events, a process ``kill -9``'d every few seconds, one worker paused
past its lease (``bench/chaos.py`` is the long run, with a PostgreSQL restart too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import Chaos, ChaosPlan
from tests.support.pg import ADMIN_URL


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kills_and_a_pause_lose_no_event_and_repeat_no_finished_step(
    tmp_path: Path, pg_template: str
) -> None:
    plan = ChaosPlan(
        admin_url=ADMIN_URL,
        events=1000,
        seconds=30,
        lease_seconds=4,
        kill_every=2.5,
        pause_seconds=6,
        settle_seconds=120,
    )
    report = Chaos(plan, tmp_path).run()
    assert report.ok, report.failures
    assert report.accepted == plan.events and report.stored == plan.events
    assert report.kills and report.paused  # the faults really happened
