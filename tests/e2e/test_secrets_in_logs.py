"""Logs are one JSON object per line and never hold a secret or a signature (SPEC §3)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx

from tests.support import signing
from tests.support.server import ADMIN_TOKEN, ALL_SECRETS, STANDARD_SECRET, HooklineProcess

WRONG_ADMIN_TOKEN = "wrong-admin-token-must-not-be-logged-4242"
WRONG_STRIPE_SECRET = "whsec_wrong_secret_must_not_be_logged"


def _signature_values(headers: dict[str, str]) -> list[str]:
    names = {n for names in signing.SIGNATURE_HEADERS.values() for n in names}
    return [v for k, v in headers.items() if k.lower() in names]


def _traffic(server: HooklineProcess) -> tuple[list[str], list[str]]:
    """Accepted, duplicate, rejected and admin requests; (signatures sent, response bodies)."""
    sent: list[str] = []
    bodies: list[str] = []

    def send(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = client.request(method, path, **kwargs)
        bodies.append(response.text)
        return response

    with httpx.Client(base_url=server.url, timeout=10) as client:
        ids = []
        for source, signer in signing.SIGNERS.items():
            body, headers = signer()
            sent += _signature_values(headers)
            for _ in range(2):  # accepted, then duplicate
                response = send(
                    client, "POST", f"/webhooks/{source}", content=body, headers=headers
                )
                assert response.status_code == 200
            ids.append(response.json()["id"])

        # Rejections: wrong secret, tampered body, stale, and signature-shaped junk.
        body, headers = signing.stripe()
        wrong = signing.StripeProvider([WRONG_STRIPE_SECRET]).sign(body, time.time())
        rejected = [
            ("stripe", body, {**headers, **wrong}),
            ("stripe", body + b"tampered", headers),
            ("stripe", *signing.stripe(now=time.time() - 3600)),
            ("github", *signing.github()),
            ("acme", *signing.standard()),
            ("shopify", *signing.shopify()),
        ]
        for index in (3, 4, 5):  # tamper the bodies: the signatures are real but wrong now
            source, body, headers = rejected[index]
            rejected[index] = (source, body + b" ", headers)
        for source, body, headers in rejected:
            sent += _signature_values(headers)
            response = send(client, "POST", f"/webhooks/{source}", content=body, headers=headers)
            assert response.status_code == 400

        # Admin: refused, then allowed (the stored headers come back redacted).
        for token in (WRONG_ADMIN_TOKEN, ""):
            auth = {"Authorization": f"Bearer {token}"} if token else {}
            assert send(client, "GET", "/admin/events", headers=auth).status_code == 401
        good = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert send(client, "GET", "/admin/events", headers=good).status_code == 200
        for event_id in ids:
            detail = send(client, "GET", f"/admin/events/{event_id}", headers=good)
            assert detail.status_code == 200
        assert send(client, "GET", "/metrics").status_code == 200
    return sent, bodies


def test_no_secret_or_signature_in_logs_or_responses(server: HooklineProcess) -> None:
    sent, bodies = _traffic(server)
    assert server.terminate() == 0  # shutdown lines are logged too
    logs = server.logs()
    assert '"webhook"' in logs and '"/admin/events"' in logs  # the traffic was logged

    standard_key = STANDARD_SECRET.removeprefix("whsec_")
    forbidden = {
        *ALL_SECRETS,
        "whsec_old_rotated_secret",  # the test config's second Stripe secret
        standard_key,
        base64.b64decode(standard_key).decode(),
        WRONG_ADMIN_TOKEN,
        WRONG_STRIPE_SECRET,
        *sent,
    }
    # The signature itself, whatever the framing around it (t=..., sha256=, v1,).
    for value in sent:
        forbidden.update(part for part in value.replace(",", "=").split("=") if len(part) >= 20)
    assert len(sent) >= 10
    for text, where in [(logs, "server log"), *((b, "a response body") for b in bodies)]:
        leaked = sorted(secret for secret in forbidden if secret in text)
        assert not leaked, f"{where} contains {leaked}"


def test_every_log_line_is_a_json_object(server: HooklineProcess) -> None:
    _traffic(server)
    httpx.get(f"{server.url}/admin/events?limit=banana")  # a 400 from the admin API
    httpx.post(f"{server.url}/webhooks/nope", content=b"\x00\xff")
    assert server.terminate() == 0
    lines = server.logs().splitlines()
    assert len(lines) > 20
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert {"ts", "level", "logger", "msg"} <= set(entry), line
