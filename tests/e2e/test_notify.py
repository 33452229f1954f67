"""ctx.notify: callbacks signed per Standard Webhooks, retried as a step."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.clients import post_stripe, wait_status
from tests.support.server import HooklineProcess, base_config, free_port

NOTIFY_SECRET = "whsec_bm90aWZ5LXNlY3JldC1mb3ItdGVzdHMtb25seQ=="


class Receiver:
    """The app's endpoint: fails the first call, accepts the rest, keeps what it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(500 if len(receiver.calls) == 1 else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_notify_is_signed_per_standard_webhooks_and_retried(
    tmp_path: Path, sqlite_url: str, receiver: Receiver
) -> None:
    config = base_config(
        sqlite_url,
        handlers=["tests.e2e.pipeline_handlers"],
        workers=1,
        pipeline={
            "notify_url": f"http://127.0.0.1:{receiver.port}/hook",
            "notify_secret": NOTIFY_SECRET,
            "backoff_jitter": "none",
        },
    )
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    server.start()
    try:
        event_id = post_stripe(server, "evt_notify", "test.notify")["id"]
        with server.admin() as admin:
            detail = wait_status(admin, event_id, "succeeded")
    finally:
        server.stop()
    assert len(receiver.calls) == 2  # first answered 500: retried, then never again
    step = detail["runs"][0]["steps"][0]
    assert [a["outcome"] for a in step["attempts"]] == ["failed", "succeeded"]
    assert "500" in step["attempts"][0]["error"]
    oracle = Webhook(NOTIFY_SECRET)
    for headers, body in receiver.calls:
        assert oracle.verify(body, headers) == {"event": "evt_notify"}
    # the same webhook-id on the retry lets the app dedupe
    assert receiver.calls[0][0]["webhook-id"] == receiver.calls[1][0]["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        oracle.verify(receiver.calls[1][1] + b" ", receiver.calls[1][0])
