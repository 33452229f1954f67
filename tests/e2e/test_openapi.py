"""``/admin/openapi.json`` describes the admin API as it really answers.

schemathesis generates requests from the document (valid ones, then invalid ones)
and sends them to a live ``hookline serve`` with stored events, runs, steps and a
traceback; every built-in check must pass: no 5xx, status codes, content types
and bodies as documented, invalid input rejected, the token actually required.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from psycopg import sql
from schemathesis import GenerationMode

from hookline.web import openapi
from tests.support.clients import post_stripe, wait_status
from tests.support.pg import ADMIN_URL, database_url
from tests.support.server import ADMIN_TOKEN, HooklineProcess, base_config

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MAX_EXAMPLES = 20
OPERATIONS = sorted(
    (method.upper(), path) for path, item in openapi.PATHS.items() for method in item
)
# (method, path, mode): invalid input only exists where there is input
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or {"parameters", "requestBody"} & set(openapi.PATHS[path][method.lower()])
]


@dataclass
class Live:
    server: HooklineProcess
    event_ids: list[str]
    run_ids: list[str]
    cursor: str


@contextmanager
def database(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """A fresh database of the backend this module runs on, for the whole module."""
    if request.param == "sqlite":
        yield f"sqlite:///{workdir / 'hookline.db'}"
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"hookline_openapi_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """A server with a succeeded, a failed (with a traceback) and an unhandled event."""
    workdir: Path = tmp_path_factory.mktemp("openapi")
    with database(request, workdir) as url:
        yield from _serve(url, workdir)


# A schedule that stays quiet during the test (midnight of Feb 29): the documented 200s of
# the schedule routes are checked on it; triggering it enqueues a job, which runs.
SCHEDULE = {"name": "leap-day", "job": "tick", "cron": "0 0 29 2 *"}


def _serve(url: str, workdir: Path) -> Iterator[Live]:
    config = base_config(
        url,
        handlers=["tests.e2e.pipeline_handlers", "tests.e2e.schedule_handlers"],
        workers=1,
        schedules=[SCHEDULE],
    )
    server = HooklineProcess(workdir, config, env={"HOOKLINE_TEST_DIR": str(workdir)}).start()
    try:
        ok = post_stripe(server, "evt_openapi_ok", "test.two_steps")["id"]
        failed = post_stripe(server, "evt_openapi_failed", "test.fixable")["id"]
        unhandled = post_stripe(server, "evt_openapi_none", "nobody.listens")["id"]
        with server.admin() as admin:
            runs = [wait_status(admin, ok, "succeeded"), wait_status(admin, failed, "failed")]
            cursor = admin.get("/admin/events", params={"limit": 1}).json()["nextCursor"]
        assert cursor
        yield Live(
            server,
            [ok, failed, unhandled],
            [detail["runs"][0]["id"] for detail in runs],
            cursor,
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def admin_schema(live: Live) -> Any:
    schema = schemathesis.openapi.from_url(f"{live.server.url}/admin/openapi.json", headers=AUTH)
    schema.config.update(base_url=live.server.url, headers=AUTH)
    return schema


def test_the_document_needs_the_token_and_is_what_the_module_builds(live: Live) -> None:
    url = f"{live.server.url}/admin/openapi.json"
    assert httpx.get(url).status_code == 401
    response = httpx.get(url, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == openapi.document()


def test_list_filters_and_cursor_pages(live: Live) -> None:
    ok, failed, unhandled = live.event_ids

    def listed(**params: Any) -> list[str]:
        with live.server.admin() as admin:
            response = admin.get("/admin/events", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed() == [unhandled, failed, ok]  # newest first
    assert listed(type="test.*") == [failed, ok]
    assert listed(type="*.two_steps") == [ok]
    assert listed(type="test_two*") == []  # "_" is a literal, not a LIKE wildcard
    assert listed(status="failed") == [failed]
    assert listed(source="stripe", q="openapi_n") == [unhandled]
    assert listed(source="github") == []
    assert listed(since="2999-01-01T00:00:00Z") == []
    assert listed(until="2000-01-01T00:00:00+02:00") == []
    assert listed(since="2000-01-01T00:00:00z", status="succeeded") == [ok]
    # ISO-8601 without a zone is UTC, as every time hookline shows; a date is its midnight
    assert listed(since="2000-01-01T00:00:00", status="succeeded") == [ok]
    assert listed(since="2000-01-01", until="2999-12-31 23:59") == [unhandled, failed, ok]
    assert listed(until="2000-01-01") == []
    pages, cursor = [], None
    with live.server.admin() as admin:
        while True:
            query = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = admin.get("/admin/events", params=query).json()
            pages.append([item["id"] for item in page["items"]])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert pages == [[unhandled], [failed], [ok]]
        for bad in ({"cursor": "nope"}, {"since": "yesterday"}, {"status": "lost"}):
            response = admin.get("/admin/events", params=bad)
            assert response.status_code == 400
            assert response.json()["error"] == "bad_request"


def test_every_admin_json_route_is_documented() -> None:
    from starlette.routing import Route

    from hookline.web import admin_api, admin_schedules

    routes = [*admin_api.routes, *admin_schedules.routes, *openapi.routes]
    served = {
        (method, "/admin" + route.path)
        for route in routes
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    assert served == set(OPERATIONS)


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_fuzzed_requests_conform(
    admin_schema: Any, live: Live, method: str, path: str, mode: GenerationMode
) -> None:
    operation = admin_schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        # A valid cursor is, by definition, one the API returned (the document says so).
        strategy = strategy.map(lambda case: _real_cursor(case, live.cursor))
        # Sometimes aim at stored ids (the configured schedule), so the documented 200
        # bodies are checked too.
        ids = live.run_ids if "run_id" in path else live.event_ids
        name = "run_id" if "run_id" in path else "event_id"
        if "{name}" in path:
            ids, name = [SCHEDULE["name"]], "name"
        if "{" in path:
            strategy = st.one_of(
                strategy,
                st.sampled_from(ids).map(
                    lambda value: operation.Case(path_parameters={name: value})
                ),
            )

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time; curl is printed
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=AUTH)

    check()


def _real_cursor(case: Any, cursor: str) -> Any:
    if case.query and "cursor" in case.query:
        case.query["cursor"] = cursor
    return case


def test_stored_resources_match_the_document(admin_schema: Any, live: Live) -> None:
    event = admin_schema["/admin/events/{event_id}"]["GET"]
    for event_id in live.event_ids:
        event.Case(path_parameters={"event_id": event_id}).call_and_validate(headers=AUTH)
    run = admin_schema["/admin/runs/{run_id}"]["GET"]
    for run_id in live.run_ids:
        run.Case(path_parameters={"run_id": run_id}).call_and_validate(headers=AUTH)
    listing = admin_schema["/admin/events"]["GET"]
    listing.Case(query={"limit": 1, "cursor": live.cursor}).call_and_validate(headers=AUTH)
    admin_schema["/admin/schedules"]["GET"].Case().call_and_validate(headers=AUTH)
    for action in ("pause", "resume", "trigger"):
        operation = admin_schema[f"/admin/schedules/{{name}}/{action}"]["POST"]
        operation.Case(path_parameters={"name": SCHEDULE["name"]}).call_and_validate(headers=AUTH)
