"""Event data is shown as text: HTML in an id, a type, a header or the payload stays inert."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from markupsafe import escape
from playwright.sync_api import Dialog, Page, expect

from hookline.providers import StripeProvider
from tests.support.browser import chromium, log_in, screenshot
from tests.support.server import ADMIN_TOKEN, STRIPE_SECRET, HooklineProcess, base_config

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
EVIL = SCRIPT + IMG
# What autoescaping makes of them
SCRIPT_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG_ESCAPED = "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[HooklineProcess]:
    config = base_config(sqlite_url, handlers=["tests.e2e.pipeline_handlers"], workers=1)
    proc = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()
    yield proc
    proc.stop()


@pytest.fixture
def evil_events(server: HooklineProcess) -> list[str]:
    """An unhandled event with HTML everywhere, and a failing run whose error has HTML."""
    ids = []
    for provider_id, event_type in [
        (f"evt_{EVIL}", f"evil.{EVIL}"),
        (f"evt_fx{EVIL}", "test.fixable"),
    ]:
        body = json.dumps(
            {"id": provider_id, "type": event_type, "data": {"note": EVIL, EVIL: [EVIL, 1]}}
        ).encode()
        headers = {
            "content-type": "application/json",
            "x-evil": IMG,
            **StripeProvider([STRIPE_SECRET]).sign(body, time.time()),
        }
        response = httpx.post(f"{server.url}/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    with server.admin() as admin:
        deadline = time.monotonic() + 20
        while admin.get(f"/admin/events/{ids[1]}").json()["status"] != "failed":
            assert time.monotonic() < deadline, "the fixable event did not fail"
            time.sleep(0.05)
    return ids


def assert_inert(html: str, where: str) -> None:
    assert SCRIPT not in html and "<img" not in html, where
    assert "onerror=alert(1)>" not in html.replace("&gt;", "?"), where
    assert len(re.findall(r"<script\b", html)) <= 1, where  # only /static/dashboard.js
    if "<script" in html:
        assert '<script src="/static/dashboard.js" defer></script>' in html, where


def test_pages_and_fragments_show_html_only_escaped(
    server: HooklineProcess, evil_events: list[str]
) -> None:
    plain, failing = evil_events
    q = quote(EVIL)
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/admin/login", data={"token": ADMIN_TOKEN}).status_code == 303
        pages = {
            "/admin/": [SCRIPT_ESCAPED, IMG_ESCAPED],
            "/admin/ui/rows": [SCRIPT_ESCAPED, IMG_ESCAPED],
            f"/admin/ui/events/{plain}": [SCRIPT_ESCAPED, IMG_ESCAPED],
            f"/admin/ui/events/{plain}/live": [],
            f"/admin/ui/events/{failing}": [SCRIPT_ESCAPED, IMG_ESCAPED],
            f"/admin/ui/events/{failing}/live": [],
            f"/admin/?q={q}&type={q}&source={q}": [SCRIPT_ESCAPED, IMG_ESCAPED],
            f"/admin/ui/failed?q={q}&type={q}&source={q}": [SCRIPT_ESCAPED, IMG_ESCAPED],
            f"/admin/ui/rows?q={q}&view=failed": [],
            f"/admin/login?next={q}": [],
        }
        for path, expected in pages.items():
            response = client.get(path)
            assert response.status_code == 200, path
            assert_inert(response.text, path)
            for fragment in expected:
                assert fragment in response.text, (path, fragment)
        # The payload is pretty-printed JSON, then escaped.
        event_page = client.get(f"/admin/ui/events/{plain}").text
        assert str(escape(f'"note": {json.dumps(EVIL)}')) in event_page
        # The login form echoed on a 401 and the error pages.
        client.cookies.clear()
        for path in (f"/admin/?q={q}", f"/admin/ui/events/{q}"):
            response = client.get(path)
            assert response.status_code == 401
            assert_inert(response.text, path)


def refreshed(page: Page) -> None:
    """Wait for one live refresh (the indicator says "live" after a successful poll)."""
    expect(page.locator("[data-live-indicator]")).to_have_attribute("data-state", "live")


@pytest.mark.browser
def test_no_script_runs_in_the_browser(
    server: HooklineProcess, evil_events: list[str], tmp_path: Path
) -> None:
    plain, failing = evil_events
    dialogs: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 860})

        def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        log_in(page, server.url)
        expect(page.locator("#event-list")).to_contain_text(SCRIPT)
        for event_id in (plain, failing):
            page.goto(f"{server.url}/admin/ui/events/{event_id}")
            expect(page.locator("dl.meta")).to_contain_text(EVIL)
            expect(page.locator("pre.payload")).to_contain_text(f'"note": {json.dumps(EVIL)}')
            expect(page.locator("table.kv")).to_contain_text(IMG)
            refreshed(page)  # the runs fragment has been fetched and swapped in
            assert page.locator("main img, main script").count() == 0
        page.goto(f"{server.url}/admin/?q={quote(EVIL)}")
        expect(page.locator("input[name=q]")).to_have_value(EVIL)
        refreshed(page)
        screenshot(page, "escaping")
        assert page.locator("main img, main script").count() == 0
    assert dialogs == []
