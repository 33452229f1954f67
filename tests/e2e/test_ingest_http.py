"""SPEC §3 ingestion, operations and the admin read API, over real HTTP.

Every test talks to a real ``hookline serve`` process (``server`` fixture) on a
fresh SQLite file; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import socket
import string
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import signing
from tests.support.server import (
    ADMIN_TOKEN,
    GITHUB_SECRET,
    STRIPE_SECRET,
    HooklineProcess,
    base_config,
)

LIMIT = 1_048_576  # [server] max_body_bytes of the test config
SOURCES = ("stripe", "github", "acme", "shopify")


@pytest.fixture(scope="module")
def refusing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HooklineProcess]:
    """One server shared by the tests that send only requests it must refuse: each of
    them ends by checking that still nothing at all is stored."""
    workdir = tmp_path_factory.mktemp("refusing")
    proc = HooklineProcess(workdir, base_config(f"sqlite:///{workdir / 'hookline.db'}")).start()
    yield proc
    proc.stop()


def post(server: HooklineProcess, source: str, signed: signing.Signed) -> httpx.Response:
    body, headers = signed
    return httpx.post(f"{server.url}/webhooks/{source}", content=body, headers=headers, timeout=10)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload: dict[str, Any] = response.json()
    assert payload["error"] == code
    assert isinstance(payload["detail"], str) and payload["detail"]
    return payload


def assert_nothing_stored(server: HooklineProcess) -> None:
    with server.admin() as admin:
        assert signing.list_events(admin) == []


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from a raw socket (the server sets Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(status_line.split()[1]), headers, rest


# -- 404 / 405 / 413 -----------------------------------------------------------------------------


def test_unknown_source_is_404(refusing_server: HooklineProcess) -> None:
    body, headers = signing.stripe()
    for path in ("/webhooks/nope", "/webhooks/", "/webhooks/stripe/extra", "/webhooks/STRIPE"):
        response = httpx.post(refusing_server.url + path, content=body, headers=headers)
        assert_error(response, 404, "unknown_source")
    assert_nothing_stored(refusing_server)


def test_other_methods_are_405_with_allow_header(refusing_server: HooklineProcess) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = httpx.request(method, f"{refusing_server.url}/webhooks/stripe")
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
    assert_nothing_stored(refusing_server)


def test_declared_length_over_limit_is_413_before_any_body_is_sent(
    refusing_server: HooklineProcess,
) -> None:
    # Only the headers go out: the answer cannot wait for a body that never comes.
    with socket.create_connection(("127.0.0.1", refusing_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: hookline\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1)
        )
        status, headers, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["error"] == "payload_too_large"
    assert headers["connection"] == "close"
    assert_nothing_stored(refusing_server)


def test_declared_length_over_limit_with_httpx_is_413(refusing_server: HooklineProcess) -> None:
    response = httpx.post(
        f"{refusing_server.url}/webhooks/stripe", content=b"x" * (LIMIT + 1), timeout=10
    )
    assert_error(response, 413, "payload_too_large")
    assert_nothing_stored(refusing_server)


def test_chunked_body_over_limit_is_413_before_the_body_ends(
    refusing_server: HooklineProcess,
) -> None:
    # The chunked body passes the limit and is never finished (no last chunk): a 413
    # can only come from a refusing_server that stops reading as soon as the limit is passed.
    chunk = b"a" * 65536
    # Signature headers that look right, so the refusal is not for their absence.
    signature = signing.stripe(b"")[1]["Stripe-Signature"].encode()
    with socket.create_connection(("127.0.0.1", refusing_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: hookline\r\n"
            b"Stripe-Signature: " + signature + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        while sent <= LIMIT:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        status, _headers, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["error"] == "payload_too_large"
    assert_nothing_stored(refusing_server)


def test_streamed_body_over_limit_is_413_and_not_read_to_the_end(
    refusing_server: HooklineProcess,
) -> None:
    total = 32 * 1024 * 1024
    produced = 0

    def stream() -> Iterator[bytes]:
        nonlocal produced
        while produced < total:
            produced += 65536
            yield b"{" * 65536

    headers = signing.stripe(b"")[1]  # looks signed: refused for its size, not its headers
    response = httpx.post(
        f"{refusing_server.url}/webhooks/stripe", content=stream(), headers=headers, timeout=30
    )
    assert_error(response, 413, "payload_too_large")
    # The refusing_server hung up after ~1 MiB (plus what socket buffers hold): the client never
    # got to push the whole 32 MiB.
    assert produced < total
    assert_nothing_stored(refusing_server)


def test_body_of_exactly_the_limit_is_accepted(server: HooklineProcess) -> None:
    event = json.dumps({"id": signing.new_id(), "type": "big.event"}).encode()
    body = event + b" " * (LIMIT - len(event))
    assert len(body) == LIMIT
    response = post(server, "stripe", signing.stripe(body))
    assert response.status_code == 200, response.text
    response = post(server, "stripe", signing.stripe(body + b" "))
    assert_error(response, 413, "payload_too_large")


def test_unknown_source_is_404_without_reading_the_body(refusing_server: HooklineProcess) -> None:
    with socket.create_connection(("127.0.0.1", refusing_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/nope HTTP/1.1\r\nHost: hookline\r\nContent-Length: 10000000\r\n\r\n"
        )
        status, _headers, body = read_response(sock)
    assert status == 404
    assert json.loads(body)["error"] == "unknown_source"


def test_per_source_body_limit_overrides_the_server_one(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path / 'hookline.db'}") + (
        '\n[[sources]]\nname = "tiny"\nprovider = "stripe"\n'
        f'secrets = ["{STRIPE_SECRET}"]\nmax_body_bytes = 200\n'
    )
    server = HooklineProcess(tmp_path, config).start()
    try:
        event = json.dumps({"id": signing.new_id(), "type": "small.event"}).encode()
        exact = event + b" " * (200 - len(event))
        assert post(server, "tiny", signing.stripe(exact)).status_code == 200
        assert_error(post(server, "tiny", signing.stripe(exact + b" ")), 413, "payload_too_large")
        # the other sources keep the server-wide limit
        assert post(server, "stripe", signing.stripe(exact + b" " * 1000)).status_code == 200
    finally:
        server.stop()


# -- 400 -----------------------------------------------------------------------------------------


def _without(signed: signing.Signed, *names: str) -> signing.Signed:
    body, headers = signed
    drop = {n.lower() for n in names}
    return body, {k: v for k, v in headers.items() if k.lower() not in drop}


def _replace(signed: signing.Signed, **changes: str) -> signing.Signed:
    body, headers = signed
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered.update({k.replace("_", "-").lower(): v for k, v in changes.items()})
    return body, lowered


def _github_legacy_signature_only() -> signing.Signed:
    body, headers = _without(signing.github(), "X-Hub-Signature-256")
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha1).hexdigest()
    return body, {**headers, "X-Hub-Signature": f"sha1={digest}"}


def test_missing_or_wrong_signature_is_400_invalid_signature(
    refusing_server: HooklineProcess,
) -> None:
    body, headers = signing.stripe()
    other_secret = signing.StripeProvider(["whsec_not_the_configured_one"])
    cases: list[tuple[str, signing.Signed]] = [
        ("stripe", (body, {})),
        ("stripe", (body, {**headers, **other_secret.sign(body, time.time())})),
        ("stripe", (body + b" ", headers)),  # tampered after signing
        ("stripe", (body, {"Stripe-Signature": "t=1,v1=zz"})),
        ("github", _without(signing.github(), "X-Hub-Signature-256")),
        ("github", _github_legacy_signature_only()),  # SHA-1 alone, even correct: refused
        ("github", _replace(signing.github(), x_hub_signature_256="sha256=" + "0" * 64)),
        ("acme", _without(signing.standard(), "webhook-signature")),
        ("acme", _replace(signing.standard(), webhook_id="msg_other")),  # the id is signed
        ("shopify", _replace(signing.shopify(), x_shopify_hmac_sha256="AAAA")),
        ("shopify", _without(signing.shopify(), "X-Shopify-Hmac-Sha256")),
    ]
    for source, signed in cases:
        response = post(refusing_server, source, signed)
        payload = assert_error(response, 400, "invalid_signature")
        for value in signed[1].values():  # the signature sent is never echoed
            if len(value) > 20:
                assert value not in response.text, (source, payload)
    assert_nothing_stored(refusing_server)


def test_timestamp_outside_tolerance_is_400_stale_timestamp(
    refusing_server: HooklineProcess,
) -> None:
    now = time.time()
    cases = [
        ("stripe", signing.stripe(now=now - 301 - 60)),
        ("stripe", signing.stripe(now=now + 301 + 60)),
        ("stripe", signing.stripe(now=now - 86400 * 365)),
        ("acme", signing.standard(now=now - 361)),
        ("acme", signing.standard(now=now + 361)),
    ]
    for source, signed in cases:
        assert_error(post(refusing_server, source, signed), 400, "stale_timestamp")
    assert_nothing_stored(refusing_server)


def test_signed_body_that_is_not_an_event_is_400_invalid_payload(
    refusing_server: HooklineProcess,
) -> None:
    cases = [
        ("stripe", signing.stripe(b"this is not json")),
        ("stripe", signing.stripe({"type": "invoice.paid"})),  # no id
        ("stripe", signing.stripe({"id": 12, "type": "invoice.paid"})),  # id not a string
        ("stripe", signing.stripe(b"[1, 2, 3]")),
        ("stripe", signing.stripe(b"")),
        ("github", signing.github(b"{not json")),
        ("github", _without(signing.github(), "X-GitHub-Delivery")),
        ("acme", signing.standard(b"\xff\xfe not utf-8")),
        ("shopify", _without(signing.shopify(), "X-Shopify-Webhook-Id")),
    ]
    for source, signed in cases:
        assert_error(post(refusing_server, source, signed), 400, "invalid_payload")
    assert_nothing_stored(refusing_server)


# -- 200 -----------------------------------------------------------------------------------------


def test_an_hmac_source_stores_a_signed_body_that_is_no_json(server: HooklineProcess) -> None:
    """Any HMAC-signing sender: with the id and type in headers, an XML or text body is an
    event (its data null), shown by the admin API; only a field read from the body needs
    JSON."""
    for body in (b"<order id='7'/>", b"plain text", b""):
        answer = post(server, "shopify", signing.shopify(body))
        assert answer.status_code == 200, answer.text
        with server.admin() as admin:
            detail = admin.get(f"/admin/events/{answer.json()['id']}").json()
        assert (detail["type"], detail["payload"], detail["body"]) == (
            "orders/create", None, body.decode()
        )  # fmt: skip


def test_accepted_then_duplicate(server: HooklineProcess) -> None:
    event_id = signing.new_id()
    signed = signing.stripe({"id": event_id, "object": "event", "type": "invoice.paid"})
    first = post(server, "stripe", signed)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert set(answer) == {"id", "eventId", "duplicate"}
    assert answer["eventId"] == event_id
    assert answer["duplicate"] is False
    assert answer["id"].startswith("evt_") and answer["id"] != event_id

    # A redelivery, re-signed later, is the same event.
    again = post(server, "stripe", signing.stripe(signed[0], now=time.time() + 1))
    assert again.status_code == 200
    assert again.json() == {**answer, "duplicate": True}
    with server.admin() as admin:
        stored = signing.list_events(admin)
    assert [e["id"] for e in stored] == [answer["id"]]


PROVIDER_CASES = {
    "stripe-snapshot": ("stripe/checkout.session.completed.json", "checkout.session.completed"),
    "stripe-thin": (
        "stripe/v1.billing.meter.error_report_triggered.json",
        "v1.billing.meter.error_report_triggered",
    ),
    "github-pull-request": ("github/pull_request.opened.json", "pull_request.opened"),
    "github-push": ("github/push.json", "push"),
    "standard-webhooks": ("standard/invoice.paid.json", "invoice.paid"),
    "shopify-hmac": ("shopify/orders.create.json", "orders/create"),
}


@pytest.mark.parametrize("case", PROVIDER_CASES, ids=list(PROVIDER_CASES))
def test_each_provider_is_accepted_and_stored_redacted(server: HooklineProcess, case: str) -> None:
    relative, expected_type = PROVIDER_CASES[case]
    source, (body, headers) = signing.fixture(relative)
    headers["Authorization"] = "Bearer some-sender-credential"
    lowered = {k.lower(): v for k, v in headers.items()}
    expected_id = {
        "stripe": lambda: json.loads(body)["id"],
        "github": lambda: lowered["x-github-delivery"],
        "acme": lambda: lowered["webhook-id"],
        "shopify": lambda: lowered["x-shopify-webhook-id"],
    }[source]()

    response = post(server, source, (body, headers))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["eventId"] == expected_id
    assert answer["duplicate"] is False

    with server.admin() as admin:
        detail = admin.get(f"/admin/events/{answer['id']}")
    assert detail.status_code == 200, detail.text
    event = detail.json()
    assert event["id"] == answer["id"]
    assert event["source"] == source
    assert event["eventId"] == expected_id
    assert event["type"] == expected_type
    assert event["status"] == "unhandled"  # the test config has no handlers
    assert event["receivedAt"].endswith("Z")
    assert event["payload"] == json.loads(body)
    assert event["runs"] == []

    stored = event["headers"]
    signature_headers = [h for h in signing.SIGNATURE_HEADERS[source] if h in lowered]
    assert signature_headers, "the fixture carried no signature header"
    for name in [*signature_headers, "authorization"]:
        assert stored[name] == "[redacted]", name
        assert lowered[name] not in json.dumps(event)
    for name, value in lowered.items():  # everything else is kept as sent
        if name not in (*signature_headers, "authorization"):
            assert stored[name] == value, name


def test_concurrent_copies_of_one_event_store_one_row(server: HooklineProcess) -> None:
    copies = 5
    signed = signing.stripe()
    barrier = threading.Barrier(copies)
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(copies)]
    for client in clients:  # connect first, so the barrier releases the requests themselves
        assert client.get("/healthz").status_code == 200

    def send(client: httpx.Client) -> dict[str, Any]:
        barrier.wait()
        response = client.post("/webhooks/stripe", content=signed[0], headers=signed[1])
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    try:
        with ThreadPoolExecutor(copies) as pool:
            answers = list(pool.map(send, clients))
    finally:
        for client in clients:
            client.close()

    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * (copies - 1)
    assert len({a["id"] for a in answers}) == 1
    with server.admin() as admin:
        stored = signing.list_events(admin)
    assert [e["id"] for e in stored] == [answers[0]["id"]]


# -- garbage in, 4xx out -------------------------------------------------------------------------

_TOKEN_CHARS = string.ascii_letters + string.digits + "-_"
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


def _random_text(rng: random.Random, max_len: int) -> str:
    return "".join(rng.choice(_PRINTABLE) for _ in range(rng.randint(0, max_len))).strip()


def _garbage_request(rng: random.Random) -> tuple[str, str, bytes, dict[str, Any]]:
    """One request that must be refused: (method, path, body, headers)."""
    method = rng.choice(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    source = rng.choice(
        [
            *SOURCES,
            *SOURCES,
            "",
            "unknown",
            "stripe/x",
            "%00",
            "a" * 300,
            "st%C3%A9",
            "..%2F..%2Fadmin",
            _random_text(rng, 20).replace(" ", ""),
        ]
    )
    path = "/webhooks/" + "".join(c if c in _TOKEN_CHARS + "%/." else "-" for c in source)
    body = rng.choice(
        [
            lambda: rng.randbytes(rng.randint(0, 4096)),
            lambda: b'{"id": "evt_1", "type": ',
            lambda: b"[" * 100_000,
            lambda: b'{"id": "evt_1", "type": "a.b"}',  # fine JSON, but unsigned
            lambda: _random_text(rng, 500).encode(),
            lambda: b"",
        ]
    )()
    headers: dict[str, Any] = {}
    kind = rng.randrange(4)
    if kind == 0 and source in SOURCES:
        # A valid signature over something that is not the provider's event: for every
        # source a body that is not JSON; where the id is not in a header, JSON without one.
        garbage = [rng.randbytes(64), b"{", b"\xff", b"not json", b'{"id": "evt_1", "type": ']
        if source in ("stripe", "github", "acme"):
            garbage += [b"null", b"[]", b'"string"', b"12"]
        if source == "stripe":
            garbage += [b"{}", b'{"id": "", "type": "x"}', b'{"id": "evt_1"}']
        body, signed_headers = signing.SIGNERS[source](rng.choice(garbage))
        if source == "shopify":  # its id and type are headers: any body it signs is stored
            signed_headers.pop("X-Shopify-Webhook-Id")  # unless the id is missing
        headers.update(signed_headers)
    elif kind == 1:
        # Signature-looking headers with garbage values.
        for name in (
            "Stripe-Signature",
            "X-Hub-Signature-256",
            "X-Hub-Signature",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "X-Shopify-Hmac-Sha256",
            "X-GitHub-Delivery",
            "X-GitHub-Event",
        ):
            if rng.random() < 0.5:
                headers[name] = rng.choice(
                    [
                        _random_text(rng, 80),
                        "t=" + str(rng.randint(0, 2**40)) + ",v1=" + rng.randbytes(32).hex(),
                        "sha256=" + rng.randbytes(32).hex(),
                        "v1," + rng.randbytes(32).hex(),
                        str(int(time.time())),
                        "x" * rng.randint(1, 8000),
                    ]
                )
    # Random extra headers, some huge, some with non-ASCII (latin-1) bytes.
    for _ in range(rng.randint(0, 6)):
        name = "X-" + "".join(rng.choice(_TOKEN_CHARS) for _ in range(rng.randint(1, 30)))
        if rng.random() < 0.2:
            headers[name] = bytes(rng.randint(0x80, 0xFF) for _ in range(rng.randint(1, 64)))
        else:
            headers[name] = (
                "v" * rng.randint(0, 8000)
                if rng.random() < 0.3
                else (_random_text(rng, 200) or "x")
            )
    if source == "github" and rng.random() < 0.5:
        headers.setdefault("X-GitHub-Event", "push")
        headers.setdefault("X-GitHub-Delivery", _random_text(rng, 40) or "d")
    return method, path, body, headers


def test_random_malformed_requests_get_4xx_and_store_nothing(
    refusing_server: HooklineProcess,
) -> None:
    rng = random.Random(20261128)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=refusing_server.url, timeout=10) as client:
        for number in range(200):
            method, path, body, headers = _garbage_request(rng)
            response = client.request(method, path, content=body, headers=headers)
            summary = f"#{number} {method} {path[:60]} -> {response.status_code} {response.text!r}"
            assert 400 <= response.status_code < 500, summary
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    # The generator did reach every refusal path.
    assert {400, 404, 405} <= set(statuses), statuses
    assert_nothing_stored(refusing_server)
    with httpx.Client(base_url=refusing_server.url) as client:
        assert client.get("/readyz").status_code == 200  # and the refusing_server is still fine


# -- operations ----------------------------------------------------------------------------------


def test_healthz_and_readyz(refusing_server: HooklineProcess) -> None:
    health = httpx.get(f"{refusing_server.url}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = httpx.get(f"{refusing_server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def _samples(server: HooklineProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_by_source_and_outcome(server: HooklineProcess) -> None:
    for _ in range(3):
        assert post(server, "acme", signing.standard()).status_code == 200
    duplicate = signing.shopify()
    assert post(server, "shopify", duplicate).status_code == 200
    assert post(server, "shopify", duplicate).json()["duplicate"] is True
    for _ in range(2):
        post(server, "github", _without(signing.github(), "X-Hub-Signature-256"))
    post(server, "stripe", signing.stripe(now=time.time() - 3600))
    post(server, "nope", signing.stripe())

    samples = _samples(server)

    def requests(source: str, outcome: str) -> float:
        key = (
            "hookline_webhook_requests_total",
            (("outcome", outcome), ("source", source)),
        )
        return samples.get(key, 0.0)

    assert requests("acme", "accepted") == 3
    assert requests("shopify", "accepted") == 1
    assert requests("shopify", "duplicate") == 1
    assert requests("github", "invalid_signature") == 2
    assert requests("stripe", "stale_timestamp") == 1
    assert requests("_unknown", "unknown_source") == 1
    assert requests("nope", "unknown_source") == 0  # unknown names are not labels
    # The ack latency histogram observed every 200.
    assert samples[("hookline_webhook_ack_seconds_count", (("source", "acme"),))] == 3
    assert samples[("hookline_webhook_ack_seconds_count", (("source", "shopify"),))] == 2
    assert (
        "hookline_webhook_ack_seconds_bucket",
        (("le", "+Inf"), ("source", "acme")),
    ) in samples


# -- admin API -----------------------------------------------------------------------------------


def test_admin_requires_the_token(server: HooklineProcess) -> None:
    stored = post(server, "stripe", signing.stripe()).json()["id"]
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
        {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": "Bearer"},
    ]
    for headers in attempts:
        for path in ("/admin/events", f"/admin/events/{stored}"):
            response = httpx.get(server.url + path, headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
            assert ADMIN_TOKEN not in response.text
    ok = httpx.get(f"{server.url}/admin/events", headers={"Authorization": f"bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200


def test_admin_pagination_is_newest_first_without_repeats(server: HooklineProcess) -> None:
    sent = []
    for _ in range(7):
        answer = post(server, "stripe", signing.stripe()).json()
        sent.append(answer["id"])
    newest_first = list(reversed(sent))

    pages: list[list[str]] = []
    with server.admin() as admin:
        params = {"limit": "3"}
        while True:
            response = admin.get("/admin/events", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert set(page) == {"items", "nextCursor"}
            pages.append([item["id"] for item in page["items"]])
            if page["nextCursor"] is None:
                break
            params["cursor"] = page["nextCursor"]
        assert pages == [newest_first[0:3], newest_first[3:6], newest_first[6:7]]

        first = admin.get("/admin/events", params={"limit": "7"}).json()
        assert [i["id"] for i in first["items"]] == newest_first
        assert first["nextCursor"] is None
        assert set(first["items"][0]) == {"id", "source", "eventId", "type", "status", "receivedAt"}
        assert signing.list_events(admin, source="github") == []
        assert len(signing.list_events(admin, source="stripe")) == 7


BAD_QUERIES = [
    "cursor=!!!",
    "cursor=bm90LWEtY3Vyc29y",  # base64, but not one the API made
    "cursor=czk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",  # "s" + 30 nines: no 64-bit int
    "cursor=%F0%9F%98%80",
    "limit=0",
    "limit=-1",
    "limit=501",
    "limit=abc",
    "limit=1.5",
    "limit=%C2%B2",  # "²": str.isdigit() says yes, int() says no
    "limit=" + "9" * 5000,
    "status=bogus",
    "since=yesterday",
    "until=2026-01-01T",  # a T without a time
    "until=2026-02-30",  # no such day
    "source=" + "s" * 501,
]


def test_admin_bad_query_is_400_not_500(server: HooklineProcess) -> None:
    post(server, "stripe", signing.stripe())
    with server.admin() as admin:
        for query in BAD_QUERIES:
            response = admin.get(f"/admin/events?{query}")
            assert_error(response, 400, "bad_request")
        missing = admin.get("/admin/events/evt_does_not_exist")
        assert_error(missing, 404, "not_found")
