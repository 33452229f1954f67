"""The demo as a user meets it: the demo config, its example handlers, the shipped fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.cli import hookline, summary
from tests.support.clients import all_events, event_detail, wait_for
from tests.support.server import ROOT, HooklineProcess, demo_config


def outbox(path: Path, kind: str) -> list[dict[str, Any]]:
    file = path / f"{kind}.jsonl"
    return [json.loads(line) for line in file.read_text().splitlines()] if file.exists() else []


def test_replaying_the_fixtures_runs_the_example_handlers(tmp_path: Path) -> None:
    box = tmp_path / "outbox"
    server = HooklineProcess(tmp_path, "", env={"HOOKLINE_DEMO_OUTBOX": str(box)})
    server.config_path.write_text(
        demo_config(f"sqlite:///{tmp_path / 'demo.db'}", server.port, handlers=True, workers=1)
    )
    server.start()
    try:
        result = hookline("replay", ROOT / "fixtures", "--config", server.config_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "failed 0" in summary(result.stdout)
        demo_token = {"Authorization": "Bearer demo-admin-token"}
        with httpx.Client(base_url=server.url, headers=demo_token, timeout=10) as admin:

            def finished() -> list[dict[str, Any]] | None:
                items = all_events(admin)
                done = all(e["status"] in ("succeeded", "unhandled") for e in items)
                return items if done else None

            events = wait_for(finished, timeout=60, what="every handled fixture to finish")
            by_type = {e["type"]: e for e in events}
            handled = {t for t, e in by_type.items() if e["status"] == "succeeded"}
            assert handled == {
                "checkout.session.completed",
                "customer.subscription.created",
                "customer.subscription.updated",
                "customer.subscription.deleted",
                "pull_request.opened",
            }
            pr = event_detail(admin, by_type["pull_request.opened"]["id"])
            names = [s["name"] for s in pr["runs"][0]["steps"]]
            assert names[0] == "summarize" and names[-1] == "welcome-comment"
    finally:
        server.stop()
    (order,) = outbox(box, "orders")
    (email,) = outbox(box, "emails")
    assert email["order"] == order["id"] and email["idempotency_key"].startswith("hl_")
    assert len(outbox(box, "subscriptions")) == 3
    assert sorted(x["label"] for x in outbox(box, "github-labels"))[1] == "size/S"
    assert len(outbox(box, "github-comments")) == 1


def test_the_generate_report_job_runs_through_the_gateway(tmp_path: Path) -> None:
    """The README's "Jobs" requests against the demo config (what `make run` serves)."""
    box = tmp_path / "outbox"
    server = HooklineProcess(tmp_path, "", env={"HOOKLINE_DEMO_OUTBOX": str(box)})
    server.config_path.write_text(
        demo_config(f"sqlite:///{tmp_path / 'demo.db'}", server.port, handlers=True, workers=1)
    )
    server.start()
    key = {"Authorization": "Bearer demo-api-key"}
    try:
        with httpx.Client(base_url=server.url, headers=key, timeout=10) as api:
            bad = api.post("/jobs/generate-report", json={"kind": "yearly"})
            assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["kind"]
            answer = api.post(
                "/jobs/generate-report",
                content=b'{"report_id": "q3-sales", "email": "ops@example.com"}',
                headers={"Idempotency-Key": "report-q3-sales", "content-type": "application/json"},
            )
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["jobId"]
            job = wait_for(
                lambda: (j := api.get(f"/jobs/{job_id}").json())["status"] == "succeeded" and j,
                what="generate-report to succeed",
            )
            assert job["result"] == {
                "reportId": "q3-sales",
                "url": "https://reports.example.com/q3-sales.pdf",
            }
            openapi = api.get("/jobs/openapi.json").json()
            assert "/jobs/generate-report" in openapi["paths"]
            assert "ReportRequest" in openapi["components"]["schemas"]
        with server.admin() as admin:
            admin.headers["Authorization"] = "Bearer demo-admin-token"
            detail = event_detail(admin, job_id)
        assert [s["name"] for s in detail["runs"][0]["steps"]] == ["render", "publish"]
        assert detail["runs"][0]["steps"][0]["result"]["bytes"] > 0
    finally:
        server.stop()
    (report,) = outbox(box, "reports")
    assert report["report"] == "q3-sales" and report["to"] == "ops@example.com"
    assert (box / "reports" / "q3-sales.pdf").read_bytes().startswith(b"%PDF")
    assert "demo-pdf-api-key-5f2c8e91" not in server.logs()


def test_the_demo_schedules_answer_the_readme_requests(tmp_path: Path) -> None:
    """The README's "Schedules" requests against the demo config (what `make run` serves)."""
    box = tmp_path / "outbox"
    server = HooklineProcess(tmp_path, "", env={"HOOKLINE_DEMO_OUTBOX": str(box)})
    server.config_path.write_text(
        demo_config(
            f"sqlite:///{tmp_path / 'demo.db'}",
            server.port,
            handlers=True,
            workers=1,
            schedules=True,
        )
    )
    server.start()
    admin_token = {"Authorization": "Bearer demo-admin-token"}
    try:
        with httpx.Client(base_url=server.url, headers=admin_token, timeout=10) as admin:
            items = admin.get("/admin/schedules").json()["items"]
            nightly, minutely = items
            assert (nightly["name"], nightly["job"], nightly["cron"]) == (
                "nightly-report", "generate-report", "0 3 * * *",
            )  # fmt: skip
            assert (nightly["timezone"], nightly["catchUp"]) == ("Europe/Berlin", "latest")
            assert (minutely["name"], minutely["every"]) == ("demo-every-minute", "1m")
            triggered = admin.post("/admin/schedules/nightly-report/trigger")
            assert triggered.status_code == 202
            job_id = triggered.json()["jobId"]
            api = {"Authorization": "Bearer demo-api-key"}
            job = wait_for(
                lambda: (
                    (j := admin.get(f"/jobs/{job_id}", headers=api).json())["status"] == "succeeded"
                    and j
                ),
                what="the triggered generate-report to succeed",
            )
            assert job["name"] == "generate-report"
            assert job["result"]["reportId"] == f"daily-{job_id}"
            payload = event_detail(admin, job_id)["payload"]
            assert payload["kind"] == "daily" and payload["scheduledFor"].endswith("Z")
            paused = admin.post("/admin/schedules/demo-every-minute/pause").json()
            assert paused["paused"] is True and paused["nextTickAt"] is None
            resumed = admin.post("/admin/schedules/demo-every-minute/resume").json()
            assert resumed["paused"] is False and resumed["nextTickAt"].endswith(":00.000Z")
            missing = admin.post("/admin/schedules/nope/pause")
            assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    finally:
        server.stop()
    assert any(r["report"] == f"daily-{job_id}" for r in outbox(box, "reports"))
