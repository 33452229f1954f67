"""``ctx.notify``: POST a payload to the app, signed per Standard Webhooks."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from hookline.errors import HooklineError
from hookline.providers import StandardProvider


class NotifyError(HooklineError):
    """The app's notify endpoint did not accept the callback (retried as a step)."""


class Notifier:
    def __init__(self, url: str, secret: str, client: httpx.AsyncClient) -> None:
        self._url = url
        self._signer = StandardProvider([secret])
        self._client = client

    async def __call__(self, payload: dict[str, Any], message_id: str) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            **self._signer.sign(body, time.time(), msg_id=message_id),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotifyError(f"notify_url unreachable: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise NotifyError(f"notify_url answered {response.status_code}")
