"""Two small leaks a hostile sender could use: a ``Host`` header reflected into redirects,
and another provider's signature header stored in clear. Through a real ``hookline serve``."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import signing
from tests.support.server import HooklineProcess, base_config

EVIL = {"Host": "evil.example"}


def test_redirects_never_use_the_host_header(server: HooklineProcess, tmp_path: Path) -> None:
    answer = httpx.get(f"{server.url}/admin", headers=EVIL)
    assert answer.is_redirect and answer.headers["location"] == "/admin/"

    config = base_config(f"sqlite:///{tmp_path / 'public.db'}").replace(
        "graceful_timeout_seconds = 5\n",
        'graceful_timeout_seconds = 5\npublic_url = "https://hooks.example.com/"\n',
    )
    public = HooklineProcess(tmp_path, config).start()
    try:
        answer = httpx.get(f"{public.url}/admin?x=1", headers=EVIL)
        assert answer.is_redirect
        assert answer.headers["location"] == "https://hooks.example.com/admin/?x=1"
    finally:
        public.stop()


def test_every_known_signature_header_is_redacted_whatever_the_source(
    server: HooklineProcess,
) -> None:
    body, headers = signing.standard()
    foreign = {
        "Svix-Signature": "v1,c2VjcmV0LW1hYy1vZi1hbm90aGVyLXNlbmRlcg==",
        "Stripe-Signature": "t=1,v1=" + "ab" * 32,
        "X-Hub-Signature": "sha1=" + "cd" * 20,
        "X-Hub-Signature-256": "sha256=" + "ef" * 32,
        "X-Slack-Signature": "v0=" + "01" * 32,
        "X-Shopify-Hmac-Sha256": "another-sources-configured-signature-header",
    }
    response = httpx.post(
        f"{server.url}/webhooks/acme", content=body, headers={**headers, **foreign}
    )
    assert response.status_code == 200, response.text
    with server.admin() as admin:
        stored = admin.get(f"/admin/events/{response.json()['id']}").json()["headers"]
    for name in [*foreign, "webhook-signature"]:
        assert stored[name.lower()] == "[redacted]", name
    assert stored["webhook-id"] == headers["webhook-id"]  # not a signature: kept
