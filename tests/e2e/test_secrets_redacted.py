"""A ``[secrets]`` value in a step's exception never leaves hookline (SPEC §3, Secrets).

The ``leak`` job logs the secret through ``ctx.logger`` and then fails a step with an
exception whose message holds it. Everything hookline writes — the jobs gateway's and the
admin API's answers, the dashboard's page, the server and worker logs, and the database
file itself — is searched for the value; ``[redacted]`` must stand in its place.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.cli import hookline
from tests.support.clients import wait_for
from tests.support.server import API_KEY, HooklineProcess, base_config

SECRET = "tok_live_9f8e7d6c5b4a39281706"


def started(tmp_path: Path, sqlite_url: str) -> HooklineProcess:
    """A serve with the job handlers, one worker and the secret as ``api_token``."""
    config = base_config(
        sqlite_url,
        handlers=["tests.e2e.job_handlers"],
        workers=1,
        secrets={"api_token": SECRET},
    )
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    return server.start()


def test_a_secret_in_a_step_exception_is_redacted_everywhere(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = started(tmp_path, sqlite_url)
    outputs: list[tuple[str, str]] = []
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        ) as api:
            job_id = api.post("/jobs/leak", json={}).json()["jobId"]
            job = wait_for(
                lambda: (j := api.get(f"/jobs/{job_id}").json())["status"] == "failed" and j,
                what="the leak job to fail",
            )
            outputs.append(("GET /jobs/{id}", api.get(f"/jobs/{job_id}").text))
        with server.admin() as admin:
            event = admin.get(f"/admin/events/{job_id}")
            run_id = event.json()["runs"][0]["id"]
            outputs += [
                ("admin event", event.text),
                ("admin run", admin.get(f"/admin/runs/{run_id}").text),
                ("dashboard page", admin.get(f"/admin/ui/events/{job_id}").text),
                ("dashboard live", admin.get(f"/admin/ui/events/{job_id}/live").text),
            ]
    finally:
        assert server.terminate() == 0
    outputs.append(("logs", server.logs()))
    for path in tmp_path.glob("hookline.db*"):  # the database file, its WAL
        outputs.append((path.name, path.read_bytes().decode("latin-1")))

    leaked = [where for where, text in outputs if SECRET in text]
    assert not leaked, f"the secret value appears in: {leaked}"

    assert job["error"] == "PermissionError: the API refused token [redacted]: revoked"
    run = event.json()["runs"][0]
    (attempt,) = run["steps"][0]["attempts"]
    assert attempt["error"] == "PermissionError: the API refused token [redacted]: revoked"
    assert "[redacted]" in attempt["traceback"] and "[redacted]" in run["error"]
    page = dict(outputs)["dashboard page"]
    assert "the API refused token [redacted]: revoked" in page
    assert "calling the API with [redacted]" in dict(outputs)["logs"]


def test_a_secret_in_results_headers_or_payload_is_not_shown_by_the_admin_api_or_cli(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The store keeps results and payloads as they are (a memoized step must return its
    real value), but what the admin API and ``events show`` print is redacted, as the
    dashboard's page is, and stays valid JSON."""
    server = started(tmp_path, sqlite_url)
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        ) as api:
            posted = api.post("/jobs/hand-back", json={"note": SECRET}, headers={"X-Echo": SECRET})
            job_id = posted.json()["jobId"]
            wait_for(
                lambda: api.get(f"/jobs/{job_id}").json()["status"] == "succeeded",
                what="the hand-back job to succeed",
            )
        with server.admin() as admin:
            event = admin.get(f"/admin/events/{job_id}")
            run_id = event.json()["runs"][0]["id"]
            run = admin.get(f"/admin/runs/{run_id}")
        shown = hookline("events", "show", job_id, "--config", server.config_path)
    finally:
        assert server.terminate() == 0
    assert shown.returncode == 0, shown.stderr
    for where, text in [("event", event.text), ("run", run.text), ("cli", shown.stdout)]:
        assert SECRET not in text, where
        detail = json.loads(text)
        (shown_run,) = detail["runs"] if where != "run" else [detail]
        assert shown_run["result"] == {"echoed": "[redacted]"}, where
        assert shown_run["steps"][0]["result"] == {"token": "[redacted]"}, where
        if where != "run":
            assert detail["payload"] == {"note": "[redacted]"}, where
            assert detail["headers"]["x-echo"] == "[redacted]", where
