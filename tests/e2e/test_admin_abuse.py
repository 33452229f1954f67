"""Abuse of the admin side, against a real ``hookline serve``: password guessing is locked
out per client, logout and token rotation end sessions for good (a copied cookie
included), and ``/metrics`` can require a token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.clients import post_stripe
from tests.support.server import ADMIN_TOKEN, HooklineProcess, base_config

LOGIN = "/admin/login"
METRICS_TOKEN = "test-metrics-token-0123456789"


def config(db_url: str, *, admin: str = "", server: str = "", token: str = ADMIN_TOKEN) -> str:
    text = base_config(db_url).replace(f'token = "{ADMIN_TOKEN}"', f'token = "{token}"\n{admin}')
    return text.replace("[server]\n", f"[server]\n{server}\n", 1)


@pytest.fixture
def guarded(tmp_path: Path, sqlite_url: str) -> Iterator[HooklineProcess]:
    """Three wrong tokens lock a client out for five minutes (in memory: either backend)."""
    text = config(sqlite_url, admin="max_failed_logins = 3\nfailed_login_window_seconds = 300")
    proc = HooklineProcess(tmp_path, text).start()
    yield proc
    proc.stop()


def as_client(address: str) -> dict[str, str]:
    """Requests from ``address``, as a trusted proxy (loopback, by default) reports it."""
    return {"X-Forwarded-For": address}


def test_wrong_tokens_lock_the_client_out_even_for_the_right_token(
    guarded: HooklineProcess,
) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        guesser = as_client("203.0.113.5")
        for _ in range(3):
            wrong = client.post(LOGIN, data={"token": "guess"}, headers=guesser)
            assert wrong.status_code == 401
        right = client.post(LOGIN, data={"token": ADMIN_TOKEN}, headers=guesser)
        assert right.status_code == 429
        assert int(right.headers["retry-after"]) > 0
        assert "set-cookie" not in right.headers
        bearer = {**guesser, "Authorization": f"Bearer {ADMIN_TOKEN}"}
        api = client.get("/admin/events", headers=bearer)
        assert api.status_code == 429
        assert api.json()["error"] == "too_many_failed_logins"
        assert int(api.headers["retry-after"]) > 0

        # Another client is not locked out by the guesser.
        other = {**as_client("203.0.113.6"), "Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.get("/admin/events", headers=other).status_code == 200

        # Wrong Bearer tokens count as much as the form.
        api_guesser = as_client("203.0.113.7")
        for _ in range(3):
            headers = {**api_guesser, "Authorization": "Bearer guess"}
            assert client.get("/admin/events", headers=headers).status_code == 401
        headers = {**api_guesser, "Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.get("/admin/events", headers=headers).status_code == 429
        assert (
            client.post(LOGIN, data={"token": ADMIN_TOKEN}, headers=api_guesser).status_code == 429
        )


def test_x_forwarded_for_counts_only_from_trusted_proxies(tmp_path: Path, sqlite_url: str) -> None:
    text = config(sqlite_url, admin="max_failed_logins = 2", server="trusted_proxies = []")
    proc = HooklineProcess(tmp_path, text).start()
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            for n in range(2):
                headers = as_client(f"198.51.100.{n}")
                assert (
                    client.post(LOGIN, data={"token": "guess"}, headers=headers).status_code == 401
                )
            # a new forwarded address changes nothing: the peer (127.0.0.1) is locked out
            fresh = as_client("198.51.100.99")
            assert client.post(LOGIN, data={"token": ADMIN_TOKEN}, headers=fresh).status_code == 429
    finally:
        proc.stop()


def login(client: httpx.Client) -> tuple[str, str]:
    """Log in; return the session cookie's value and the page's CSRF token."""
    response = client.post(LOGIN, data={"token": ADMIN_TOKEN})
    assert response.status_code == 303, response.text
    page = client.get("/admin/")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return client.cookies["hookline_session"], match[1]


def opens(url: str, cookie: str) -> int:
    with httpx.Client(base_url=url, timeout=10) as thief:
        thief.cookies.set("hookline_session", cookie, path="/admin")
        return thief.get("/admin/").status_code


def test_logout_ends_a_copied_cookie(tmp_path: Path, db_url: str) -> None:
    proc = HooklineProcess(tmp_path, config(db_url)).start()
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            cookie, csrf = login(client)
            assert opens(proc.url, cookie) == 200  # the copy works while the session lives
            out = client.post("/admin/logout", data={"csrf": csrf})
            assert out.status_code == 303
            assert opens(proc.url, cookie) == 401
    finally:
        proc.stop()


def test_a_new_admin_token_ends_every_session_even_when_the_old_one_returns(
    tmp_path: Path, db_url: str
) -> None:
    old = HooklineProcess(tmp_path, config(db_url)).start()
    with httpx.Client(base_url=old.url, timeout=10) as client:
        cookie, _ = login(client)
    old.stop()
    rotated = HooklineProcess(tmp_path, config(db_url, token="a-brand-new-admin-token-42"))
    rotated.start()
    try:
        assert opens(rotated.url, cookie) == 401
    finally:
        rotated.stop()
    back = HooklineProcess(tmp_path, config(db_url)).start()  # the old token again
    try:
        assert opens(back.url, cookie) == 401
    finally:
        back.stop()


def test_metrics_can_require_a_token(tmp_path: Path, sqlite_url: str) -> None:
    text = config(sqlite_url) + f'\n[metrics]\ntoken = "{METRICS_TOKEN}"\n'
    proc = HooklineProcess(tmp_path, text).start()
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            assert client.get("/metrics").status_code == 401
            wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
            right = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert right.status_code == 200 and "hookline_" in right.text
            # the admin token is no metrics token
            admin = client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert admin.status_code == 401
    finally:
        proc.stop()


def test_metrics_stay_open_without_a_token(server: HooklineProcess) -> None:
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 200


def test_an_admin_json_body_is_read_only_up_to_its_limit(server: HooklineProcess) -> None:
    """A filter or a mode is a few hundred bytes: a huge body (even one that is only
    whitespace, which reads as the empty filter: every event) is refused with 413 after
    64 KiB, not read whole into memory and acted on."""
    post_stripe(server, "evt_big_body", "test.unhandled")
    blank = b" " * (1024 * 1024)
    with server.admin() as admin:
        for path in ("/admin/redeliver", "/admin/events/evt_x/redeliver"):
            answer = admin.post(path, content=blank, headers={"content-type": "application/json"})
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"] == "payload_too_large"
        assert admin.post("/admin/redeliver", content=b" ").json() == {"count": 1}
