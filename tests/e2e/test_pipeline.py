"""The continuation pipeline over a running ``hookline serve --workers 2``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.support.cli import hookline
from tests.support.clients import all_events, event_detail, post_stripe, wait_for, wait_status
from tests.support.server import API_KEY, HooklineProcess, base_config

HANDLERS = ["tests.e2e.pipeline_handlers"]
API_AUTH = {"Authorization": f"Bearer {API_KEY}"}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def assert_one_at_a_time_in_order(log: Path, total: int, keys: int) -> None:
    """``log`` has the "start KEY N" / "end KEY N" lines of ``total`` keyed runs: per key,
    runs in arrival order, strictly start, end, start, end… (never two of a key at once)."""
    per_key: dict[str, list[tuple[str, int]]] = {}
    for line in lines(log):
        kind, key, number = line.split()
        per_key.setdefault(key, []).append((kind, int(number)))
    assert len(per_key) == keys
    for key, entries in per_key.items():
        numbers = [n for kind, n in entries if kind == "start"]
        assert numbers == sorted(numbers) and len(numbers) == total // keys, key
        assert [kind for kind, _ in entries] == ["start", "end"] * (total // keys), key


@pytest.fixture
def pipeline_server(tmp_path: Path, db_url: str) -> Iterator[HooklineProcess]:
    config = base_config(
        db_url,
        handlers=HANDLERS,
        workers=2,
        pipeline={"backoff_jitter": "none", "backoff_base_seconds": 0.2},
    )
    proc = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def admin(pipeline_server: HooklineProcess) -> Iterator[httpx.Client]:
    with pipeline_server.admin() as client:
        yield client


def test_two_steps_run_exactly_once_per_event(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    ids = [post_stripe(pipeline_server, f"evt_two_{i}", "test.two_steps")["id"] for i in range(25)]
    for event_id in ids:
        detail = wait_status(admin, event_id, "succeeded")
        assert [s["name"] for s in detail["runs"][0]["steps"]] == ["one", "two"]
        assert detail["runs"][0]["result"] == {"one": "one", "two": "two"}
    effects = lines(tmp_path / "effects.log")
    for i in range(25):
        assert effects.count(f"one evt_two_{i}") == 1
        assert effects.count(f"two evt_two_{i}") == 1


def test_a_sync_step_runs_in_one_of_the_workers_step_threads(
    pipeline_server: HooklineProcess, admin: httpx.Client
) -> None:
    event_id = post_stripe(pipeline_server, "evt_thread", "test.thread")["id"]
    detail = wait_status(admin, event_id, "succeeded")
    name, step_thread = detail["runs"][0]["result"]
    assert name.startswith("hookline-step_") and step_thread


def test_failing_step_is_retried_with_growing_backoff(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    event_id = post_stripe(pipeline_server, "evt_flaky", "test.flaky")["id"]
    detail = wait_status(admin, event_id, "succeeded")
    run = detail["runs"][0]
    assert run["attempts"] == 3
    assert run["result"] == 3
    first, flaky = run["steps"]
    assert len(first["attempts"]) == 1  # the step before the failure ran once
    attempts = flaky["attempts"]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "succeeded"]
    for failed in attempts[:2]:
        assert "flaky failure number" in failed["error"]
        assert "Traceback" in failed["traceback"] and "flaky_step" in failed["traceback"]
    gap1 = ts(attempts[1]["startedAt"]) - ts(attempts[0]["endedAt"])
    gap2 = ts(attempts[2]["startedAt"]) - ts(attempts[1]["endedAt"])
    assert gap1 >= 0.2 and gap2 >= 0.4 and gap2 > gap1  # base 0.2 s, doubling, no jitter
    assert lines(tmp_path / "effects.log").count("first evt_flaky") == 1


def test_nonretryable_error_fails_at_once_and_provider_resend_resumes(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    first = post_stripe(pipeline_server, "evt_fix", "test.fixable")
    detail = wait_status(admin, first["id"], "failed")
    assert detail["runs"][0]["attempts"] == 1
    assert "not fixed yet" in detail["runs"][0]["error"]
    (tmp_path / "fixed").touch()
    again = post_stripe(pipeline_server, "evt_fix", "test.fixable")
    assert again["duplicate"] is True and again["id"] == first["id"]
    detail = wait_status(admin, first["id"], "succeeded")
    assert len(detail["runs"]) == 2  # the failed run and the resumed one
    effects = lines(tmp_path / "effects.log")
    assert effects.count("prepare evt_fix") == 1  # succeeded step reused
    assert effects.count("fixable evt_fix") == 2


def test_provider_resend_during_a_running_run_starts_nothing(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    first = post_stripe(pipeline_server, "evt_busy", "test.block")
    wait_for(lambda: "blocking-start evt_busy" in lines(tmp_path / "effects.log"))
    again = post_stripe(pipeline_server, "evt_busy", "test.block")
    assert again == {**first, "duplicate": True}
    assert len(event_detail(admin, first["id"])["runs"]) == 1
    (tmp_path / "release-evt_busy").touch()
    detail = wait_status(admin, first["id"], "succeeded")
    assert len(detail["runs"]) == 1
    assert lines(tmp_path / "effects.log").count("blocking-start evt_busy") == 1


def test_redelivery_resume_repeats_nothing_and_fresh_repeats_once(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    event_id = post_stripe(pipeline_server, "evt_redo", "test.two_steps")["id"]
    wait_status(admin, event_id, "succeeded")
    response = admin.post(f"/admin/events/{event_id}/redeliver", json={"mode": "resume"})
    assert response.status_code == 202
    resumed_run = response.json()["runIds"][0]
    wait_for(lambda: admin.get(f"/admin/runs/{resumed_run}").json()["status"] == "succeeded")
    effects = lines(tmp_path / "effects.log")
    assert effects.count("one evt_redo") == 1 and effects.count("two evt_redo") == 1

    response = admin.post(f"/admin/events/{event_id}/redeliver", json={"mode": "fresh"})
    fresh_run = response.json()["runIds"][0]
    wait_for(lambda: admin.get(f"/admin/runs/{fresh_run}").json()["status"] == "succeeded")
    effects = lines(tmp_path / "effects.log")
    assert effects.count("one evt_redo") == 2 and effects.count("two evt_redo") == 2
    assert len(event_detail(admin, event_id)["runs"]) == 3


def test_bulk_redelivery_counts_matching_events(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    ids = [post_stripe(pipeline_server, f"evt_bulk_{i}", "test.two_steps")["id"] for i in range(6)]
    post_stripe(pipeline_server, "evt_other", "test.slow")
    for event_id in ids:
        wait_status(admin, event_id, "succeeded")
    response = admin.post("/admin/redeliver", json={"type": "test.two_*", "mode": "fresh"})
    assert response.status_code == 202 and response.json() == {"count": 6}
    wait_for(lambda: lines(tmp_path / "effects.log").count("two evt_bulk_5") == 2)
    for event_id in ids:
        wait_status(admin, event_id, "succeeded")
    effects = lines(tmp_path / "effects.log")
    assert all(effects.count(f"one evt_bulk_{i}") == 2 for i in range(6))
    bad = admin.post("/admin/redeliver", json={"mode": "sideways"})
    assert bad.status_code == 400


def test_cancel_a_queued_run(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    event_id = post_stripe(pipeline_server, "evt_cancel", "test.block")["id"]
    wait_for(lambda: "blocking-start evt_cancel" in lines(tmp_path / "effects.log"))
    run_id = event_detail(admin, event_id)["runs"][0]["id"]
    response = admin.post(f"/admin/runs/{run_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    (tmp_path / "release-evt_cancel").touch()
    detail = wait_status(admin, event_id, "cancelled")
    assert detail["runs"][0]["status"] == "cancelled"
    assert admin.post("/admin/runs/run_nope/cancel").status_code == 404


def test_durable_sleep_and_gather(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    event_id = post_stripe(pipeline_server, "evt_nap", "test.sleep_gather")["id"]
    detail = wait_status(admin, event_id, "succeeded")
    run = detail["runs"][0]
    assert run["result"] == ["g1", "g2", "g3"]
    assert run["attempts"] == 1  # a sleep does not spend an attempt
    names = [s["name"] for s in run["steps"]]
    assert names[:2] == ["before-sleep", "nap"] and sorted(names[2:]) == ["g1", "g2", "g3"]
    effects = lines(tmp_path / "effects.log")
    assert effects.count("before-sleep evt_nap") == 1  # not repeated after waking
    nap = run["steps"][1]["result"]["until"]
    woke = float(next(x for x in effects if x.startswith("woke evt_nap")).split()[-1])
    assert woke >= nap


def test_nondeterministic_replay_fails_clearly(
    pipeline_server: HooklineProcess, admin: httpx.Client
) -> None:
    event_id = post_stripe(pipeline_server, "evt_nd", "test.nondeterministic")["id"]
    detail = wait_status(admin, event_id, "failed")
    run = detail["runs"][0]
    assert run["attempts"] == 2
    assert "NonDeterminismError" in run["error"] and "step-1" in run["error"]


def test_concurrency_key_runs_in_arrival_order(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    total, keys = 1000, 10
    with httpx.Client() as client:
        for n in range(total):
            key = f"k{n % keys}"
            post_stripe(
                pipeline_server,
                f"evt_ord_{n}",
                "test.ordered",
                {"key": key, "number": n},
                client=client,
            )
    wait_for(
        lambda: len(lines(tmp_path / "order.log")) >= 2 * total,
        timeout=120,
        what="all ordered runs",
    )
    # the last step's line is written before its run is recorded as finished
    wait_for(
        lambda: all(e["status"] == "succeeded" for e in all_events(admin, type="test.ordered")),
        timeout=60,
        what="every ordered run to be recorded as succeeded",
    )
    assert_one_at_a_time_in_order(tmp_path / "order.log", total, keys)


def test_a_job_handlers_concurrency_key_runs_its_jobs_in_order(
    pipeline_server: HooklineProcess, tmp_path: Path
) -> None:
    """The key function of a job handler applies to jobs from the gateway, as to events."""
    total, keys = 200, 5
    with httpx.Client(base_url=pipeline_server.url, headers=API_AUTH) as client:
        for n in range(total):
            answer = client.post("/jobs/ordered-job", json={"key": f"k{n % keys}", "number": n})
            assert answer.status_code == 202, answer.text
    wait_for(
        lambda: len(lines(tmp_path / "order.log")) >= 2 * total,
        timeout=120,
        what="all ordered jobs",
    )
    assert_one_at_a_time_in_order(tmp_path / "order.log", total, keys)


def test_metrics_show_workers_queue_runs_and_step_durations(
    pipeline_server: HooklineProcess, admin: httpx.Client
) -> None:
    scrape = lambda: httpx.get(f"{pipeline_server.url}/metrics").text  # noqa: E731
    wait_for(lambda: "hookline_workers 2.0" in scrape(), what="both workers to heartbeat")
    ids = [post_stripe(pipeline_server, f"evt_m_{i}", "test.two_steps")["id"] for i in range(5)]
    for event_id in ids:
        wait_status(admin, event_id, "succeeded")
    # run outcomes and step durations come from the workers' counters: the text of
    # /metrics lags by up to one worker heartbeat
    wait_for(lambda: 'hookline_runs_total{outcome="succeeded"} 5.0' in scrape(), what="counts")
    text = scrape()
    assert 'hookline_step_seconds_count{outcome="succeeded"} 10.0' in text
    assert "hookline_queue_depth 0.0" in text
    assert 'hookline_webhook_requests_total{outcome="accepted",source="stripe"} 5.0' in text
    # counters, not a count of the rows still stored: pruning the events changes nothing
    result = hookline("prune", "--older-than", "0s", "--config", pipeline_server.config_path)
    assert result.returncode == 0 and "pruned 5 event(s)" in result.stdout, result.stderr
    text = scrape()
    assert 'hookline_runs_total{outcome="succeeded"} 5.0' in text
    assert 'hookline_step_seconds_count{outcome="succeeded"} 10.0' in text


def test_a_steps_own_cancellederror_or_exit_is_a_failed_attempt(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    """A CancelledError nobody asked for (awaiting a task something else cancelled) and a
    sys.exit() in a step are failures like any other: recorded, retried up to max_attempts,
    then failed. Before, the first was handed back at once forever and the second killed
    the worker with every run in flight on it."""
    ids = {
        "evt_own_cancel": post_stripe(pipeline_server, "evt_own_cancel", "test.own_cancel")["id"],
        "evt_exits": post_stripe(pipeline_server, "evt_exits", "test.exits")["id"],
    }
    bystanders = [post_stripe(pipeline_server, f"evt_by_{i}", "test.slow")["id"] for i in range(6)]
    for name, error in (("evt_own_cancel", "CancelledError"), ("evt_exits", "SystemExit: 3")):
        run = wait_status(admin, ids[name], "failed")["runs"][0]
        assert run["attempts"] == 2
        attempts = run["steps"][0]["attempts"]
        assert [a["outcome"] for a in attempts] == ["failed", "failed"]
        assert all(a["error"].startswith(error) for a in attempts), attempts
    for event_id in bystanders:
        wait_status(admin, event_id, "succeeded")
    effects = lines(tmp_path / "effects.log")
    assert effects.count("cancelled-step evt_own_cancel") == 2
    assert effects.count("exit-step evt_exits") == 2
    assert all(effects.count(f"b evt_by_{i}") == 1 for i in range(6))
    assert "worker exited" not in pipeline_server.logs()


def test_a_nonretryable_error_in_gather_fails_the_run_whatever_its_place(
    pipeline_server: HooklineProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    event_id = post_stripe(pipeline_server, "evt_gnr", "test.gather_nonretryable")["id"]
    run = wait_status(admin, event_id, "failed")["runs"][0]
    assert run["attempts"] == 1 and "card declined" in run["error"]
    assert lines(tmp_path / "effects.log").count("declined evt_gnr") == 1
