"""Admin actions that cannot do what they were asked answer 409 and change nothing:
cancelling a run that already ended, and a ``fresh`` redelivery while a run of the event
is still on its way (admin API, dashboard and CLI; real HTTP, both backends)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import hookline
from tests.support.clients import event_detail, post_stripe, wait_for, wait_status
from tests.support.server import ADMIN_TOKEN, HooklineProcess, base_config


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[HooklineProcess]:
    config = base_config(db_url, handlers=["tests.e2e.pipeline_handlers"], workers=1)
    proc = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()
    yield proc
    proc.stop()


@pytest.fixture
def admin(server: HooklineProcess) -> Iterator[httpx.Client]:
    with server.admin() as client:
        yield client


@pytest.fixture
def dashboard(server: HooklineProcess) -> Iterator[tuple[httpx.Client, str]]:
    """A logged-in dashboard session and its CSRF token."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/admin/login", data={"token": ADMIN_TOKEN}).status_code == 303
        match = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/").text)
        assert match
        yield client, match[1]


def started(tmp_path: Path, event: str) -> bool:
    log = tmp_path / "effects.log"
    return log.exists() and f"blocking-start {event}" in log.read_text()


def test_fresh_redelivery_while_a_run_is_active_is_refused(
    server: HooklineProcess,
    admin: httpx.Client,
    dashboard: tuple[httpx.Client, str],
    tmp_path: Path,
) -> None:
    event_id = post_stripe(server, "evt_busy", "test.block")["id"]
    wait_for(lambda: started(tmp_path, "evt_busy"), what="the run to start")
    (run,) = event_detail(admin, event_id)["runs"]

    refused = admin.post(f"/admin/events/{event_id}/redeliver", json={"mode": "fresh"})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert (body["error"], body["runIds"]) == ("redelivery_in_progress", [run["id"]])
    assert run["id"] in body["detail"] and "nothing was created" in body["detail"]

    client, csrf = dashboard
    page = client.post(
        f"/admin/ui/events/{event_id}/redeliver", data={"csrf": csrf, "mode": "fresh"}
    )
    assert page.status_code == 409 and run["id"] in page.text

    cli = hookline("events", "redeliver", event_id, "--fresh", "--config", server.config_path)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "not redelivered" in cli.stderr and run["id"] in cli.stderr

    # resume: the run on its way is that redelivery; its id comes back, nothing is added
    resumed = admin.post(f"/admin/events/{event_id}/redeliver", json={"mode": "resume"})
    assert (resumed.status_code, resumed.json()) == (202, {"runIds": [run["id"]]})
    assert [r["id"] for r in event_detail(admin, event_id)["runs"]] == [run["id"]]

    (tmp_path / "release-evt_busy").touch()
    wait_status(admin, event_id, "succeeded")
    fresh = admin.post(f"/admin/events/{event_id}/redeliver", json={"mode": "fresh"})
    assert fresh.status_code == 202
    (new_run,) = fresh.json()["runIds"]
    assert new_run != run["id"]
    assert admin.get(f"/admin/runs/{new_run}").json()["generation"] == 1


def test_cancelling_a_run_that_ended_is_a_conflict(
    server: HooklineProcess,
    admin: httpx.Client,
    dashboard: tuple[httpx.Client, str],
    tmp_path: Path,
) -> None:
    done = post_stripe(server, "evt_done", "test.two_steps")["id"]
    (succeeded,) = wait_status(admin, done, "succeeded")["runs"]
    refused = admin.post(f"/admin/runs/{succeeded['id']}/cancel")
    assert refused.status_code == 409, refused.text
    assert refused.json() == {
        "error": "run_finished",
        "detail": f"run {succeeded['id']} has already succeeded; "
        "only a queued, running or retrying run can be cancelled",
    }
    assert admin.get(f"/admin/runs/{succeeded['id']}").json()["status"] == "succeeded"
    client, csrf = dashboard
    page = client.post(f"/admin/ui/runs/{succeeded['id']}/cancel", data={"csrf": csrf})
    assert page.status_code == 409 and "has already succeeded" in page.text

    busy = post_stripe(server, "evt_stop", "test.block")["id"]
    wait_for(lambda: started(tmp_path, "evt_stop"), what="the run to start")
    (running,) = event_detail(admin, busy)["runs"]
    cancelled = admin.post(f"/admin/runs/{running['id']}/cancel")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    again = admin.post(f"/admin/runs/{running['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["detail"].startswith(f"run {running['id']} has already been cancelled")
    assert admin.post("/admin/runs/run_nope/cancel").status_code == 404
