"""``/admin/openapi.json`` describes the admin API as it really answers, hostile stored
events included: schemathesis generates requests (valid and invalid) from the document,
sends them to a live server on each backend, and checks every answer against it (status
codes, bodies, content types, no 5xx). The store holds events whose data no encoder writes
as such (lone surrogates, integers orjson reads as infinity, 600 levels of nesting), so
``GET /admin/events/{event_id}`` is fuzzed against them too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode

from hookline.web.openapi import document
from tests.support import fuzz, signing
from tests.support.server import ADMIN_TOKEN, HooklineProcess, base_config

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOSTILE_DATA: list[Any] = [
    {"name": "\ud800 lone", "n": 1},
    {"amount": 10**400},
    {"text": "nul \x00 inside"},
]
DEEP = b"[" * 600 + b"1" + b"]" * 600


def _seed(server: HooklineProcess) -> list[str]:
    """Store ordinary and hostile events; their hookline ids."""
    bodies = [
        json.dumps({"id": signing.new_id(), "type": "t", "data": d}).encode() for d in HOSTILE_DATA
    ]
    bodies.append(b'{"id": "%s", "type": "deep", "data": %s}' % (signing.new_id().encode(), DEEP))
    sent = [signing.stripe(body) for body in bodies]
    ids: list[str] = []
    for source, (body, headers) in [
        *(("stripe", s) for s in sent),
        ("github", signing.github()),
        ("slack", signing.slack()),
    ]:
        response = httpx.post(f"{server.url}/webhooks/{source}", content=body, headers=headers)
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return ids


@pytest.fixture(scope="module", params=fuzz.BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HooklineProcess, list[str]]]:
    workdir: Path = tmp_path_factory.mktemp("admin-fuzz")
    with fuzz.database(request, workdir) as url:
        # no worker: runs stay queued (cancellable, redeliverable); nothing runs handlers
        config = base_config(url, handlers=["tests.e2e.pipeline_handlers"])
        server = HooklineProcess(workdir, config).start()
        try:
            yield server, _seed(server)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def schema(live: tuple[HooklineProcess, list[str]]) -> Any:
    server, _ids = live
    loaded = schemathesis.openapi.from_url(f"{server.url}/admin/openapi.json", headers=AUTH)
    loaded.config.update(base_url=server.url, headers=AUTH)
    return loaded


def _no_made_up_cursor(case: Any) -> Any:
    # a cursor is opaque: only one the API returned is valid (a made-up one is a 400 by design)
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    return case


def _has_input(operation: dict[str, Any]) -> bool:
    """Input beyond a path id (any string is an id): a query parameter or a body."""
    query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
    return bool(query) or "requestBody" in operation


OPERATIONS = [
    (method.upper(), path, _has_input(operation))
    for path, item in document()["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post")
]
# invalid input exists only where there is input
CASES = [
    (m, p, mode)
    for m, p, has_input in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or has_input
]


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_fuzzed_admin_requests_conform(
    schema: Any,
    live: tuple[HooklineProcess, list[str]],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    _server, stored = live
    strategy = schema[path][method].as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        strategy = strategy.map(_no_made_up_cursor)
    if "{event_id}" in path and mode is GenerationMode.POSITIVE:
        # mostly ids of stored events (hostile ones among them), else what was generated
        def known(case: Any, pick: int) -> Any:
            if pick < len(stored):
                case.path_parameters["event_id"] = stored[pick]
            return case

        strategy = st.tuples(strategy, st.integers(0, len(stored))).map(lambda t: known(*t))

    fuzz.call_and_validate_each(strategy, AUTH, examples=8)
