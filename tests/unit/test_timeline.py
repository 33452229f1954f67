"""The event page's timeline puts each step attempt under the run that made it."""

from __future__ import annotations

import re

from hookline.store.base import EventSummary, RunRecord, StepAttempt, StepRecord
from hookline.web.dashboard import templates
from hookline.web.timeline import timeline


def attempt(number: int, started: float, outcome: str) -> StepAttempt:
    error = None if outcome == "succeeded" else "boom"
    return StepAttempt(number, started, started + 0.1, outcome, error, error)


def run(run_id: str, created: float, status: str, steps: list[StepRecord]) -> RunRecord:
    return RunRecord(
        id=run_id,
        event_id="evt_1",
        handler="h",
        generation=0,
        status=status,
        attempts=1,
        max_attempts=3,
        available_at=created,
        created_at=created,
        updated_at=created + 1,
        steps=steps,
    )


def test_a_resumed_run_reuses_what_succeeded_and_keeps_the_failure_on_the_first_run() -> None:
    # One generation: both runs see the same step records.
    steps = [
        StepRecord("prepare", 0, "succeeded", {"ok": 1}, [attempt(1, 10.1, "succeeded")]),
        StepRecord(
            "charge", 1, "succeeded", 7, [attempt(1, 10.2, "failed"), attempt(2, 20.1, "succeeded")]
        ),
        StepRecord("notify", 2, "succeeded", None, [attempt(1, 20.2, "succeeded")]),
    ]
    first, second = run("run_a", 10.0, "failed", steps), run("run_b", 20.0, "succeeded", steps)
    newest, oldest = timeline([first, second])

    assert newest.run is second and newest.latest and not oldest.latest
    assert [(s.name, s.status, len(s.attempts)) for s in newest.steps] == [
        ("prepare", "reused", 0),
        ("charge", "succeeded", 1),
        ("notify", "succeeded", 1),
    ]
    assert newest.steps[0].result == {"ok": 1}
    # "notify" first ran in the second run: the first run never reached it.
    assert [(s.name, s.status, len(s.attempts)) for s in oldest.steps] == [
        ("prepare", "succeeded", 1),
        ("charge", "failed", 1),
    ]
    assert oldest.steps[1].result is None


def test_a_queued_resumed_run_shows_what_is_pending() -> None:
    steps = [
        StepRecord("prepare", 0, "succeeded", 1, [attempt(1, 10.1, "succeeded")]),
        StepRecord("charge", 1, "failed", None, [attempt(1, 10.2, "failed")]),
    ]
    queued = run("run_b", 20.0, "queued", steps)
    newest, _ = timeline([run("run_a", 10.0, "failed", steps), queued])
    assert [(s.name, s.status) for s in newest.steps] == [
        ("prepare", "reused"),
        ("charge", "pending"),
    ]
    cancelled = run("run_b", 20.0, "cancelled", steps)
    newest, _ = timeline([run("run_a", 10.0, "failed", steps), cancelled])
    assert [s.status for s in newest.steps] == ["reused", "skipped"]


def test_handlers_are_timed_separately() -> None:
    steps = [StepRecord("s", 0, "succeeded", 1, [attempt(1, 30.1, "succeeded")])]
    other = RunRecord(
        id="run_c",
        event_id="evt_1",
        handler="other",
        generation=0,
        status="succeeded",
        attempts=1,
        max_attempts=3,
        available_at=30.0,
        created_at=30.0,
        updated_at=31.0,
        steps=steps,
    )
    mine = run("run_a", 10.0, "succeeded", steps)
    views = timeline([mine, other])
    assert [v.run.id for v in views] == ["run_c", "run_a"]
    # run_a is its handler's only run: its window never closes
    assert views[1].steps[0].status == "succeeded"


def test_the_event_page_numbers_attempts_per_run() -> None:
    # Five failed attempts in the first run, then a resumed run whose one attempt is the
    # step's sixth overall: the page reads "1 attempt … 1", not "1 attempt … #6".
    failures = [attempt(n, 10.0 + n, "failed") for n in range(1, 6)]
    steps = [StepRecord("charge", 0, "succeeded", 7, [*failures, attempt(6, 20.1, "succeeded")])]
    runs = timeline([run("run_a", 10.0, "failed", steps), run("run_b", 20.0, "succeeded", steps)])
    page = (
        templates()
        .get_template("_live.html")
        .render(
            event=EventSummary("evt_1", "stripe", "p1", "t", "succeeded", 10.0, 1),
            runs=runs,
            session=None,
            redact=lambda text: text,
        )
    )
    newest, oldest = page.split('data-run="run_b"')[1].split('data-run="run_a"')

    def numbers(html: str) -> list[str]:
        return re.findall(r'<td class="c-num"[^>]*>(\d+)</td>', html)

    assert "1 attempt<" in newest and numbers(newest) == ["1"]
    assert 'title="attempt 6 of this step, counting earlier runs"' in newest
    assert "5 attempts" in oldest and numbers(oldest) == ["1", "2", "3", "4", "5"]
