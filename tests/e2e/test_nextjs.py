"""The Next.js example (``examples/nextjs``) against a real hookline, in real Chromium.

``hookline serve`` with the demo config (SQLite, its example handlers, its API key and
notify secret; ``notify_url`` pointed at the app's port) and ``next start`` of the built
app. Needs node/npm (skipped locally without them, FAILS under ``CI=true``); the build
is ``scripts/prepare.mjs``'s, done once and only when a source changed.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from tests.support.browser import chromium, screenshot
from tests.support.clients import all_events, event_detail
from tests.support.nextjs import (
    APP,
    DEMO_API_KEY,
    DEMO_NOTIFY_SECRET,
    NextApp,
    node_env,
    prepare,
)
from tests.support.server import HooklineProcess, demo_config

pytestmark = pytest.mark.nextjs

DEMO_ADMIN = {"Authorization": "Bearer demo-admin-token"}
RENDER_SECONDS = "3"  # the job's render step: the page must answer long before it is done


@dataclass
class Stack:
    hookline: HooklineProcess
    app: NextApp

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.hookline.url, headers=DEMO_ADMIN, timeout=10)

    def job_ids(self) -> set[str]:
        with self.admin() as admin:
            return {e["id"] for e in all_events(admin, source="jobs")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prepare()
    workdir = tmp_path_factory.mktemp("nextjs")
    hookline = HooklineProcess(
        workdir,
        "",
        env={
            "HOOKLINE_DEMO_OUTBOX": str(workdir / "outbox"),
            "HOOKLINE_DEMO_RENDER_SECONDS": RENDER_SECONDS,
        },
    )
    # The app's port is chosen first: the demo config's notify_url must name it.
    app = NextApp(workdir, {})
    hookline.config_path.write_text(
        demo_config(
            f"sqlite:///{workdir / 'demo.db'}",
            hookline.port,
            handlers=True,
            workers=1,
            notify_url=f"{app.url}/api/hookline",
        )
    )
    hookline.start()
    # HOOKLINE_API_KEY and HOOKLINE_NOTIFY_SECRET are left unset: the app's defaults are
    # the demo config's, which is what `make run` + `npm run dev` rely on.
    app.env["HOOKLINE_URL"] = hookline.url
    for name in ("HOOKLINE_API_KEY", "HOOKLINE_NOTIFY_SECRET"):
        app.env.pop(name, None)
    try:
        app.start()
        yield Stack(hookline, app)
    finally:
        app.stop()
        hookline.stop()


@pytest.mark.browser
def test_the_form_enqueues_at_once_and_the_page_follows_the_job_to_succeeded(
    stack: Stack,
) -> None:
    report_id = f"q3-revenue-{uuid.uuid4().hex[:8]}"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.set_default_timeout(30_000)
        page.goto(stack.app.url)
        expect(page.get_by_role("heading", name="Reports")).to_be_visible()

        # Invalid input: the Server Action answers with an error and hookline is not called.
        before = stack.job_ids()
        page.get_by_label("Report ID").fill("not an id")
        page.get_by_role("button", name="Generate report").click()
        expect(page.get_by_test_id("form-error")).to_contain_text("invalid_input")
        expect(page.get_by_label("Report ID")).to_have_value("not an id")  # kept, to fix
        assert stack.job_ids() == before

        page.get_by_label("Report ID").fill(report_id)
        page.get_by_role("button", name="Generate report").click()
        job_id_text = page.get_by_test_id("job-id")
        expect(job_id_text).to_have_text(re.compile(r"^job_\w+$"))
        job_id = job_id_text.inner_text()
        # The action's answer, shown at once: the job is stored and queued, not yet done.
        expect(page.get_by_test_id("accepted-status")).to_have_text("queued")
        expect(page.get_by_test_id("live-status")).to_have_text(re.compile("^(queued|running)$"))
        expect(page.get_by_test_id("result")).to_have_count(0)
        screenshot(page, "nextjs-queued")

        expect(page.get_by_test_id("live-status")).to_have_text("succeeded")
        result = json.loads(page.get_by_test_id("result").inner_text())
        assert result == {
            "reportId": report_id,
            "url": f"https://reports.example.com/{report_id}.pdf",
        }
        expect(page.get_by_test_id("callback")).to_contain_text("verified report.ready")
        screenshot(page, "nextjs-succeeded")
        page.close()

    assert stack.job_ids() == before | {job_id}  # one job for one submit
    with stack.admin() as admin:
        detail = event_detail(admin, job_id)
    assert detail["type"] == "generate-report"
    assert detail["payload"] == {"report_id": report_id, "notify": True}
    (run,) = detail["runs"]
    assert run["status"] == "succeeded"
    assert [s["name"] for s in run["steps"]] == ["render", "publish", "notify-app"]
    assert all(s["status"] == "succeeded" for s in run["steps"])
    # The app answered hookline's signed callback with a 2xx at the first attempt ...
    (notify,) = [s for s in run["steps"] if s["name"] == "notify-app"]
    assert [a["outcome"] for a in notify["attempts"]] == ["succeeded"]
    # ... after verifying it: the callback route logs only what verified.
    verified = [
        json.loads(line)
        for line in stack.app.logs().splitlines()
        if line.startswith("{") and "callback verified" in line
    ]
    assert any(v["jobId"] == job_id and v["type"] == "report.ready" for v in verified)


def test_the_route_handler_answers_202_and_validates_before_calling_hookline(
    stack: Stack,
) -> None:
    with httpx.Client(base_url=stack.app.url, timeout=10) as app:
        before = stack.job_ids()
        for body in [
            {"reportId": ""},
            {"reportId": "   "},
            {"reportId": 5},
            {"reportId": None},
            {},
            {"reportId": "a b"},
            {"reportId": "x" * 101},
            {"reportId": "naïve"},  # pydantic's \w would take it; the app's rule is ASCII
            ["reportId"],
        ]:
            answer = app.post("/api/reports", json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert answer.json()["error"] == "invalid_input" and answer.json()["detail"]
        not_json = app.post("/api/reports", content=b"{nope", headers={"content-type": "x"})
        assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_json"
        too_long = {"Idempotency-Key": "k" * 256}
        bad_key = app.post("/api/reports", json={"reportId": "ok"}, headers=too_long)
        assert bad_key.status_code == 400 and bad_key.json()["error"] == "invalid_header"
        assert stack.job_ids() == before  # nothing invalid reached hookline

        longest = "a._-" * 25
        answer = app.post("/api/reports", json={"reportId": f"  {longest}  "})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body == {"jobId": body["jobId"], "status": "queued"}
        assert answer.headers["location"] == f"/api/reports/{body['jobId']}"

        key = {"Idempotency-Key": f"report-{uuid.uuid4()}"}
        first = app.post("/api/reports", json={"reportId": "keyed"}, headers=key)
        again = app.post("/api/reports", json={"reportId": "keyed"}, headers=key)
        assert first.status_code == again.status_code == 202
        assert first.json()["jobId"] == again.json()["jobId"]
        other = app.post("/api/reports", json={"reportId": "other"}, headers=key)
        assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"

        unknown = app.get("/api/reports/job_unknown")
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"

    with stack.admin() as admin:
        stored = event_detail(admin, body["jobId"])["payload"]
    assert stored == {"report_id": longest, "notify": True}  # trimmed, and mapped


def _signed(body: bytes, secret: str, at: datetime | None = None) -> dict[str, str]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    stamp = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, stamp, body.decode()),
    }


def test_the_callback_route_accepts_only_verified_callbacks(stack: Stack) -> None:
    body = json.dumps({"type": "report.ready", "jobId": "job_x", "reportId": "r"}).encode()
    url = f"{stack.app.url}/api/hookline"
    good = _signed(body, DEMO_NOTIFY_SECRET)
    assert httpx.post(url, content=body, headers=good).status_code == 204
    assert httpx.post(url, content=body, headers=good).status_code == 204  # a redelivery: 2xx

    other_secret = "whsec_" + "b3RoZXItc2VjcmV0LW5vdC10aGUtYXBwcw=="
    stale = datetime.now(UTC) - timedelta(minutes=10)
    refused: list[tuple[str, bytes, dict[str, str]]] = [
        ("tampered body", body.replace(b'"r"', b'"s"'), good),
        ("tampered signature", body, {**good, "webhook-signature": "v1," + "A" * 43 + "="}),
        ("another secret", body, _signed(body, other_secret)),
        ("stale timestamp", body, _signed(body, DEMO_NOTIFY_SECRET, stale)),
        ("unsigned", body, {"content-type": "application/json"}),
    ]
    for name, content, headers in refused:
        answer = httpx.post(url, content=content, headers=headers)
        assert answer.status_code == 401, name
        assert answer.json()["error"] == "invalid_signature", name
    rejected = [line for line in stack.app.logs().splitlines() if "callback rejected" in line]
    assert len(rejected) >= len(refused)
    assert DEMO_NOTIFY_SECRET not in stack.app.logs()


def test_no_secret_reaches_the_browser_bundles(stack: Stack) -> None:
    """The API key and the notify secret live in server code only (``server-only``)."""
    static = APP / ".next" / "static"
    client_text = "\n".join(p.read_text(errors="replace") for p in static.rglob("*") if p.is_file())
    server_text = "\n".join(
        p.read_text(errors="replace")
        for p in (APP / ".next" / "server").rglob("*.js")
        if p.is_file()
    )
    # The scans see what they should: the page's own code in the browser bundles, the
    # demo defaults in the server's.
    assert "/api/reports/" in client_text and "Generate report" in client_text
    assert DEMO_API_KEY in server_text and DEMO_NOTIFY_SECRET in server_text
    for secret in (DEMO_API_KEY, DEMO_NOTIFY_SECRET, DEMO_NOTIFY_SECRET.removeprefix("whsec_")):
        assert secret not in client_text
    for name in ("HOOKLINE_API_KEY", "HOOKLINE_NOTIFY_SECRET"):
        assert name not in client_text
    # The pages served to a browser hold none either.
    with httpx.Client(base_url=stack.app.url, timeout=10) as app:
        html = app.get("/").text
    assert DEMO_API_KEY not in html and "whsec_" not in html


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HooklineProcess]:
    """The demo config's gateway with no workers: the client tests need answers, not runs."""
    workdir = tmp_path_factory.mktemp("gateway")
    hookline = HooklineProcess(workdir, "")
    hookline.config_path.write_text(
        demo_config(f"sqlite:///{workdir / 'demo.db'}", hookline.port, handlers=True)
    )
    hookline.start()
    yield hookline
    hookline.stop()


def _npm(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args], cwd=APP, env=node_env(**env), capture_output=True, text=True, timeout=300
    )


def test_the_typed_clients_tests_pass_against_a_live_hookline(gateway: HooklineProcess) -> None:
    """examples/nextjs/test/*.test.ts (node:test): idempotency replay, Retry-After, typed
    422 errors, the Edge-runtime check — against this real server."""
    prepare()
    result = _npm(["test"], {"HOOKLINE_URL": gateway.url, "HOOKLINE_API_KEY": DEMO_API_KEY})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = dict(re.findall(r"^\N{INFORMATION SOURCE} (\w+) (\d+)$", output, flags=re.M))
    assert counts["fail"] == "0" and int(counts["pass"]) >= 16, counts


def _types_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", "scripts/openapi-types.mjs", "--check", *args],
        cwd=APP,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_committed_types_match_the_servers_openapi_document(
    gateway: HooklineProcess, tmp_path: Path
) -> None:
    prepare()
    live = _types_check("--url", gateway.url)  # GET /jobs/openapi.json with the demo key
    assert live.returncode == 0, live.stdout + live.stderr
    cli = _types_check()  # `hookline jobs openapi` with the demo config
    assert cli.returncode == 0, cli.stdout + cli.stderr

    # A change on the server's side is drift: the check fails and says how to fix it.
    document: dict[str, Any] = httpx.get(
        f"{gateway.url}/jobs/openapi.json",
        headers={"Authorization": f"Bearer {DEMO_API_KEY}"},
    ).json()
    schema = document["components"]["schemas"]["ReportRequest"]
    schema["properties"]["format"] = {"type": "string", "enum": ["pdf", "csv"]}
    changed = tmp_path / "openapi.json"
    changed.write_text(json.dumps(document))
    drift = _types_check("--openapi", str(changed))
    assert drift.returncode == 1
    assert "drifted" in drift.stderr and "npm run types:generate" in drift.stderr
