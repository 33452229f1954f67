"""A validly signed body nested deeper than orjson writes (254 levels) is still shown by
the admin API, the dashboard and the CLI, never a 500."""

from __future__ import annotations

import json
import re

import httpx

from tests.support import signing
from tests.support.cli import hookline
from tests.support.server import ADMIN_TOKEN, HooklineProcess


def test_a_deeply_nested_payload_is_shown_everywhere(server: HooklineProcess) -> None:
    depth = 400
    body = ("[" * depth + '"deep"' + "]" * depth).encode()
    response = httpx.post(
        f"{server.url}/webhooks/shopify", content=body, headers=signing.shopify(body)[1]
    )
    assert response.status_code == 200, response.text
    event_id = response.json()["id"]
    with server.admin() as admin:
        detail = admin.get(f"/admin/events/{event_id}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["payload"] == json.loads(body)

    with httpx.Client(base_url=server.url) as client:
        assert client.post("/admin/login", data={"token": ADMIN_TOKEN}).status_code == 303
        page = client.get(f"/admin/ui/events/{event_id}")
    assert page.status_code == 200
    assert re.search(r"&#34;deep&#34;|&quot;deep&quot;|\"deep\"", page.text)

    shown = hookline("events", "show", event_id, "--config", server.config_path)
    assert shown.returncode == 0, shown.stderr
    assert '"deep"' in shown.stdout
