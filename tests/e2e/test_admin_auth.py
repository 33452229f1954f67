"""Everything under ``/admin`` needs the admin token or a dashboard session.

The routes are enumerated from the app itself (``create_app``), so a route added
later is covered without touching this file. Then: the login form, the session
cookie's attributes and lifetime, and CSRF on every dashboard form.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.routing import BaseRoute, Mount, Route

from hookline.config import parse_settings
from hookline.pipeline import Registry
from hookline.store import open_store
from hookline.web.app import create_app
from hookline.web.auth import AdminGuard
from hookline.web.session import COOKIE, DEFAULT_MAX_AGE, session_key
from tests.support.clients import post_stripe
from tests.support.server import ADMIN_TOKEN, HooklineProcess, base_config

LOGIN = "/admin/login"
HANDLERS = ["tests.e2e.pipeline_handlers"]


def _walk(routes: list[BaseRoute], prefix: str) -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield method, prefix + route.path
        elif isinstance(route, Mount):
            app = route.app
            if isinstance(app, AdminGuard):
                app = app.app
            yield from _walk(list(getattr(app, "routes", [])), prefix + route.path)


def admin_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route under /admin, from the real app."""
    settings = parse_settings(tomllib.loads(base_config("sqlite:///unused.db")), {})
    app = create_app(settings, open_store("sqlite:///unused.db"), Registry())
    found = sorted(set(_walk(app.rest.routes, "")))
    return [(method, path) for method, path in found if path.startswith("/admin/")]


ROUTES = admin_routes()


def fill(template: str, event_id: str, run_id: str) -> str:
    values = {"event_id": event_id, "run_id": run_id}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m[1], "x"), template)


def cookie_with_age(seconds_old: int, key: bytes | None = None) -> str:
    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds_old

    serializer = URLSafeTimedSerializer(
        key or session_key(ADMIN_TOKEN), salt="hookline.session", signer=Signer
    )
    return str(serializer.dumps({"sid": "forged-session-id"}))


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[HooklineProcess]:
    """Handlers loaded but no workers, so runs exist and stay queued. These tests send many
    wrong tokens on purpose: the lockout (tests/e2e/test_admin_abuse.py) is set out of reach."""
    config = base_config(sqlite_url, handlers=HANDLERS, workers=0).replace(
        f'token = "{ADMIN_TOKEN}"', f'token = "{ADMIN_TOKEN}"\nmax_failed_logins = 10000'
    )
    proc = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()
    yield proc
    proc.stop()


@pytest.fixture
def ids(server: HooklineProcess) -> tuple[str, str]:
    event_id = post_stripe(server, "evt_auth", "test.two_steps")["id"]
    with server.admin() as admin:
        run_id = admin.get(f"/admin/events/{event_id}").json()["runs"][0]["id"]
    return event_id, run_id


def login(client: httpx.Client) -> str:
    """Log in; return the page's CSRF token."""
    response = client.post(LOGIN, data={"token": ADMIN_TOKEN})
    assert response.status_code == 303, response.text
    page = client.get("/admin/")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match[1]


def test_the_enumeration_sees_the_api_the_dashboard_and_the_document() -> None:
    assert {
        ("GET", "/admin/events"),
        ("GET", "/admin/events/{event_id}"),
        ("POST", "/admin/redeliver"),
        ("POST", "/admin/runs/{run_id}/cancel"),
        ("GET", "/admin/openapi.json"),
        ("GET", "/admin/"),
        ("GET", "/admin/ui/events/{event_id}"),
        ("POST", "/admin/ui/events/{event_id}/redeliver"),
        ("POST", "/admin/logout"),
        ("GET", LOGIN),
        ("POST", LOGIN),
    } <= set(ROUTES)


def test_every_admin_route_answers_401_without_valid_credentials(
    server: HooklineProcess, ids: tuple[str, str]
) -> None:
    forged = cookie_with_age(0, key=b"not-the-key")
    expired = cookie_with_age(DEFAULT_MAX_AGE + 60)
    attempts: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("no credentials", {}, {}),
        ("wrong token", {"Authorization": "Bearer wrong-token"}, {}),
        ("token as basic", {"Authorization": f"Basic {ADMIN_TOKEN}"}, {}),
        ("forged session", {}, {COOKIE: forged}),
        ("expired session", {}, {COOKIE: expired}),
    ]
    checked = 0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for method, template in ROUTES:
            path = fill(template, *ids)
            for label, headers, cookies in attempts:
                if path == LOGIN and method == "GET":
                    continue  # the form itself is open
                client.cookies.clear()
                for name, value in cookies.items():
                    client.cookies.set(name, value, path="/admin")
                data = {"token": "wrong-token"} if path == LOGIN else {"mode": "resume"}
                response = client.request(method, path, headers=headers, data=data)
                assert response.status_code == 401, f"{method} {path} with {label}"
                checked += 1
            # A method the route does not serve is refused before routing, too.
            if path != LOGIN:
                assert client.request("DELETE", path).status_code == 401, path
        assert client.get("/admin/no-such-page").status_code == 401
    assert checked >= 5 * 15


def test_json_routes_answer_json_and_pages_answer_the_login_form(
    server: HooklineProcess, ids: tuple[str, str]
) -> None:
    with httpx.Client(base_url=server.url) as client:
        api = client.get("/admin/events")
        assert api.status_code == 401
        assert api.json() == {"error": "unauthorized", "detail": "missing or wrong admin token"}
        page = client.get(f"/admin/ui/events/{ids[0]}?x=1")
        assert page.status_code == 401
        assert page.headers["content-type"].startswith("text/html")
        assert 'action="/admin/login"' in page.text
        assert f'name="next" value="/admin/ui/events/{ids[0]}?x=1"' in page.text
        form = client.get(LOGIN)
        assert form.status_code == 200 and 'name="token"' in form.text
        assert "script-src 'self'" in form.headers["content-security-policy"]
        # The assets are public and live outside /admin (and the cookie's path).
        for asset in ("dashboard.css", "dashboard.js", "favicon.svg"):
            assert client.get(f"/static/{asset}").status_code == 200


def test_a_well_signed_cookie_without_a_session_on_the_server_opens_nothing(
    server: HooklineProcess,
) -> None:
    """Signed with the right key and young: only a login makes a session, so a cookie
    crafted by someone who learnt the signing key still gets the login form."""
    with httpx.Client(base_url=server.url) as client:
        client.cookies.set(COOKIE, cookie_with_age(60), path="/admin")
        assert client.get("/admin/").status_code == 401


def test_login_sets_a_strict_http_only_cookie_that_opens_only_the_dashboard(
    server: HooklineProcess,
) -> None:
    with httpx.Client(base_url=server.url) as client:
        wrong = client.post(LOGIN, data={"token": "wrong-token", "next": "/admin/ui/failed"})
        assert wrong.status_code == 401 and "Wrong admin token" in wrong.text
        assert "set-cookie" not in wrong.headers
        response = client.post(LOGIN, data={"token": ADMIN_TOKEN, "next": "/admin/ui/failed"})
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/ui/failed"
        cookie = response.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path", "max-age", "samesite"} <= attributes
        assert "samesite=strict" in cookie.lower() and "path=/admin" in cookie.lower()
        assert "secure" not in attributes  # plain http here; https requests get Secure
        assert ADMIN_TOKEN not in cookie
        assert client.get("/admin/").status_code == 200
        assert client.get("/admin/ui/failed").status_code == 200
        # The session is for the dashboard; the JSON API wants the token itself.
        assert client.get("/admin/events").status_code == 401
        assert client.get("/admin/openapi.json").status_code == 401


def test_the_cookie_is_secure_when_the_request_came_over_https(server: HooklineProcess) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a TLS-terminating proxy in front)
    with httpx.Client(base_url=server.url) as client:
        response = client.post(
            LOGIN, data={"token": ADMIN_TOKEN}, headers={"X-Forwarded-Proto": "https"}
        )
        assert response.status_code == 303
        assert "secure" in response.headers["set-cookie"].lower().split("; ")


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/admin/../x", "/elsewhere", "/admin/login"],
)
def test_login_redirects_only_into_the_dashboard(server: HooklineProcess, target: str) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = client.post(LOGIN, data={"token": ADMIN_TOKEN, "next": target})
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/"


def test_every_dashboard_form_needs_the_session_csrf_token(
    server: HooklineProcess, ids: tuple[str, str]
) -> None:
    event_id, run_id = ids
    templates = [
        p for m, p in ROUTES if m == "POST" and p.startswith(("/admin/ui/", "/admin/logout"))
    ]
    # redeliver, cancel, bulk redeliver, logout; a schedule's pause, resume and trigger
    assert len(templates) == 7
    forms = [fill(template, *ids) for template in templates]
    with httpx.Client(base_url=server.url) as other, httpx.Client(base_url=server.url) as client:
        foreign_token = login(other)
        token = login(client)
        assert foreign_token != token
        for path in forms:
            for bad in ({}, {"csrf": ""}, {"csrf": "x" * 64}, {"csrf": foreign_token}):
                response = client.post(path, data={"mode": "resume", **bad})
                assert response.status_code == 403, (path, bad)
            # the token in a JSON body or the query string does not count either
            assert client.post(path, json={"csrf": token}).status_code == 403
            assert client.post(f"{path}?csrf={token}").status_code == 403
            # nor the right token in a request the browser says another site made
            cross = {"Sec-Fetch-Site": "cross-site"}
            response = client.post(path, data={"csrf": token, "mode": "resume"}, headers=cross)
            assert response.status_code == 403, path
        with server.admin() as admin:
            assert len(admin.get(f"/admin/events/{event_id}").json()["runs"]) == 1
            assert admin.get(f"/admin/runs/{run_id}").json()["status"] == "queued"

        cancel = client.post(
            f"/admin/ui/runs/{run_id}/cancel",
            data={"csrf": token},
            headers={"Sec-Fetch-Site": "same-origin"},
        )
        assert cancel.status_code == 303
        assert cancel.headers["location"] == f"/admin/ui/events/{event_id}?done=cancelled"
        redeliver = client.post(
            f"/admin/ui/events/{event_id}/redeliver", data={"csrf": token, "mode": "fresh"}
        )
        assert redeliver.status_code == 303
        with server.admin() as admin:
            runs = admin.get(f"/admin/events/{event_id}").json()["runs"]
            assert [r["status"] for r in runs] == ["cancelled", "queued"]
            assert runs[1]["generation"] == 1  # fresh

        out = client.post("/admin/logout", data={"csrf": token})
        assert out.status_code == 303 and out.headers["location"] == LOGIN
        assert "max-age=0" in out.headers["set-cookie"].lower()
        assert client.get("/admin/").status_code == 401


def test_without_an_admin_token_nobody_logs_in(tmp_path: Path, sqlite_url: str) -> None:
    config = base_config(sqlite_url).replace(f'token = "{ADMIN_TOKEN}"', 'token = ""')
    proc = HooklineProcess(tmp_path, config).start()
    try:
        with httpx.Client(base_url=proc.url) as client:
            for token in ("", "x", ADMIN_TOKEN):
                assert client.post(LOGIN, data={"token": token}).status_code == 401
            assert (
                client.get("/admin/events", headers={"Authorization": "Bearer x"}).status_code
                == 401
            )
            assert "No admin token is configured" in client.get(LOGIN).text
    finally:
        proc.stop()
