"""The dashboard in a real headless Chromium over ``hookline serve --workers 2``.

Debian's Chromium (``make browser``) driven by Playwright; no browser is ever
downloaded. Without it the test is skipped locally and FAILS under ``CI=true``.
Screenshots land in ``tests/artifacts/`` on every run; ``docs/screenshots/``
holds copies of ``events.png`` and ``event.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect

from tests.support.browser import chromium, screenshot
from tests.support.cli import hookline
from tests.support.clients import post_stripe, wait_status
from tests.support.server import ADMIN_TOKEN, HooklineProcess, base_config

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 20_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


SCHEDULES = [
    {"name": "nightly", "job": "tick", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
     "payload": {"schedule": "nightly"}},
    {"name": "every-second", "job": "tick", "every": "1s", "payload": {"schedule": "every-second"}},
]  # fmt: skip


@pytest.fixture
def pipeline_server(tmp_path: Path, sqlite_url: str) -> Iterator[HooklineProcess]:
    config = base_config(
        sqlite_url,
        handlers=["tests.e2e.pipeline_handlers", "tests.e2e.schedule_handlers"],
        workers=2,
        schedules=SCHEDULES,
    )
    proc = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    # paused before the start, so it ticks only once the test resumes it
    for command in (["migrate"], ["schedules", "pause", "every-second"]):
        result = hookline(*command, "--config", proc.config_path)
        assert result.returncode == 0, result.stderr
    proc.start()
    yield proc
    proc.stop()


def row(page: Page, provider_event_id: str) -> Locator:
    return page.locator("#event-list tbody tr", has_text=provider_event_id)


def test_dashboard_login_filter_traceback_redeliver_live_logout_csrf(
    browser: Browser, pipeline_server: HooklineProcess, tmp_path: Path
) -> None:
    server = pipeline_server
    ok = [
        post_stripe(server, f"evt_1Qok{i}Zx", "test.two_steps", {"object": {"n": i}})["id"]
        for i in range(3)
    ]
    for provider_id, event_type in [
        ("evt_1Qinv7Lk", "invoice.paid"),
        ("evt_1Qsub2Mn", "customer.subscription.updated"),
    ]:
        post_stripe(server, provider_id, event_type, {"object": {"id": "sub_9"}})
    order = {"object": {"id": "ord_42", "lines": [{"sku": "A1", "qty": 2}], "total": 4200}}
    broken = post_stripe(server, "evt_1Qfix_a", "test.fixable", order)["id"]
    other = post_stripe(server, "evt_1Qfix_b", "test.fixable", order)["id"]
    with server.admin() as admin:
        for event_id in ok:
            wait_status(admin, event_id, "succeeded")
        wait_status(admin, broken, "failed")
        wait_status(admin, other, "failed")

    dialogs: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(LIVE_TIMEOUT_MS)

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)

    # Not logged in: the dashboard answers 401 with the login form.
    response = page.goto(f"{server.url}/admin/")
    assert response is not None and response.status == 401
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    expect(page.locator(".flash.err")).to_have_text("Wrong admin token.")
    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.url}/admin/")
    expect(page.locator("#event-list tbody tr")).to_have_count(7)
    cookie = next(c for c in context.cookies() if c["name"] == "hookline_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    screenshot(page, "events")

    # The list refreshes itself: a new event appears without a reload.
    page.evaluate("window.__sameDocument = true")
    post_stripe(server, "evt_1Qlate9Q", "invoice.paid")
    expect(row(page, "evt_1Qlate9Q")).to_have_count(1)
    assert page.evaluate("window.__sameDocument") is True

    # Filters: a type glob and a status.
    page.fill("input[name=type]", "test.fix*")
    page.select_option("select[name=status]", "failed")
    page.click(".filters button[type=submit]")
    expect(page).to_have_url(f"{server.url}/admin/?source=&type=test.fix*&status=failed&q=")
    rows = page.locator("#event-list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.locator(".badge")).to_have_text(["failed", "failed"])
    page.fill("input[name=q]", "fix_a")
    page.click(".filters button[type=submit]")
    expect(rows).to_have_count(1)
    screenshot(page, "events-filtered")

    # The failed event: its run, the step's error and the traceback.
    rows.locator("a").first.click()
    expect(page).to_have_url(f"{server.url}/admin/ui/events/{broken}")
    expect(page.locator("[data-event-status]")).to_have_text("failed")
    traceback = page.locator("details[data-key^='tb/'] pre").first
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("NonRetryableError: downstream rejected the order")
    expect(page.locator("pre.payload")).to_contain_text('"sku": "A1"')
    expect(page.locator("table.kv")).to_contain_text("[redacted]")
    screenshot(page, "event-failed", full_page=True)

    # Fix the cause, then Redeliver (resume): the status turns succeeded with no reload.
    (tmp_path / "fixed").touch()
    page.click("button:has-text('Redeliver (resume)')")
    expect(page).to_have_url(f"{server.url}/admin/ui/events/{broken}?done=resume")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("[data-event-status]")).to_have_text("succeeded")
    assert page.evaluate("window.__sameDocument") is True
    runs = page.locator("article.run")
    expect(runs).to_have_count(2)
    expect(runs.locator("[data-run-status]")).to_have_text(["succeeded", "failed"])
    # the resumed run reused "prepare" and retried "fixable"; the first run keeps its failure
    expect(runs.nth(0).locator(".step-head .badge")).to_have_text(["reused", "succeeded"])
    expect(runs.nth(1).locator(".step-head .badge")).to_have_text(["succeeded", "failed"])
    older = runs.nth(1).locator("details[data-key^='tb/'] summary")
    older.click()
    expect(runs.nth(1).locator("details[data-key^='tb/'] pre")).to_be_visible()
    screenshot(page, "event-full", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 1280})  # header and both runs
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "event")
    page.set_viewport_size({"width": 1280, "height": 860})

    # A forged POST (no CSRF token, or a wrong one) is refused, even with the session cookie.
    forged = page.request.post(
        f"{server.url}/admin/ui/events/{broken}/redeliver", form={"mode": "fresh"}
    )
    assert forged.status == 403
    forged = page.request.post(
        f"{server.url}/admin/ui/events/{broken}/redeliver",
        form={"mode": "fresh", "csrf": "0" * 64},
    )
    assert forged.status == 403
    with server.admin() as admin:
        assert len(admin.get(f"/admin/events/{broken}").json()["runs"]) == 2

    # The dead letter queue: bulk redelivery (after a confirmation) empties it.
    page.click("nav.nav a:has-text('Failed')")
    expect(row(page, "evt_1Qfix_b")).to_have_count(1)
    screenshot(page, "failed")
    page.click("form.bulk button[type=submit]")
    expect(page.locator(".flash.ok")).to_have_text("Redelivered 1 failed event.")
    assert dialogs == ["Redeliver every failed event that matches the source and type filters?"]
    expect(page.locator("#event-list .empty")).to_be_visible()
    with server.admin() as admin:
        wait_status(admin, other, "succeeded")

    # Schedules: pause, resume and trigger from the page; ticks appear without a reload.
    page.click("nav.nav a:has-text('Schedules')")
    expect(page).to_have_url(f"{server.url}/admin/ui/schedules")
    nightly = page.locator("tr[data-schedule='nightly']")
    every = page.locator("tr[data-schedule='every-second']")
    expect(nightly).to_contain_text("30 2 * * *")
    expect(nightly).to_contain_text("Europe/Berlin")
    expect(nightly.locator(".badge").first).to_have_text("active")
    expect(every.locator(".badge").first).to_have_text("paused")
    expect(every).to_contain_text("No tick yet.")
    every.locator("button:has-text('Resume')").click()
    expect(page.locator(".flash.ok")).to_have_text("every-second is resumed.")
    page.evaluate("window.__sameDocument = true")
    expect(every.locator(".badge.t-fired").first).to_be_visible()  # the live region polls
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "schedules")
    every.locator("button:has-text('Pause')").click()
    expect(page.locator(".flash.ok")).to_have_text("every-second is paused.")
    nightly.locator("button:has-text('Trigger now')").click()
    assert dialogs[-1] == "Run tick now?"
    flash = page.locator(".flash.ok")
    expect(flash).to_contain_text("Triggered nightly: job job_")
    flash.locator("a").click()
    expect(page.locator("[data-event-status]")).to_have_text("succeeded")
    forged = page.request.post(f"{server.url}/admin/ui/schedules/nightly/pause", form={})
    assert forged.status == 403
    with server.admin() as admin:
        states = {i["name"]: i["paused"] for i in admin.get("/admin/schedules").json()["items"]}
    assert states == {"nightly": False, "every-second": True}

    # Phone width: the list and the event page stay within the screen.
    phone = context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    for url, name in [
        ("/admin/", "events-phone"),
        (f"/admin/ui/events/{broken}", "event-phone"),
        ("/admin/ui/schedules", "schedules-phone"),
    ]:
        phone.goto(server.url + url)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{url} is {width}px wide at phone width"
        screenshot(phone, name, full_page=True)
    phone.close()

    # Log out: the dashboard is 401 again.
    page.click("button:has-text('Log out')")
    expect(page).to_have_url(f"{server.url}/admin/login")
    response = page.goto(f"{server.url}/admin/")
    assert response is not None and response.status == 401
    expect(page.locator("#token")).to_be_visible()
    assert httpx.get(f"{server.url}/admin/events").status_code == 401
    context.close()
