"""The jobs gateway over real HTTP against ``hookline serve``, on SQLite and PostgreSQL.

One server per backend for the module (``tests.e2e.job_handlers``, one worker); each test
uses its own job ids and idempotency keys, so they do not see each other.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from openapi_spec_validator import validate
from psycopg import sql

from tests.e2e.job_handlers import ReportRequest
from tests.support.cli import hookline
from tests.support.clients import wait_for
from tests.support.pg import ADMIN_URL, database_url
from tests.support.server import ADMIN_TOKEN, API_KEY, HooklineProcess, base_config

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_BODY = 65_536


@contextmanager
def database(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{workdir / 'hookline.db'}"
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"hookline_jobs_{secrets.token_hex(6)}"
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
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HooklineProcess]:
    workdir = tmp_path_factory.mktemp("jobs")
    with database(request, workdir) as url:
        config = base_config(
            url,
            handlers=["tests.e2e.job_handlers"],
            workers=1,
            max_body_bytes=MAX_BODY,
            secrets={"api_token": "tok_unused_here_0123456789"},
        )
        proc = HooklineProcess(workdir, config, env={"HOOKLINE_TEST_DIR": str(workdir)})
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()


@pytest.fixture
def api(server: HooklineProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        yield client


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def effects(server: HooklineProcess) -> list[str]:
    path = server.workdir / "effects.log"
    return path.read_text().splitlines() if path.exists() else []


def wait_job(api: httpx.Client, job_id: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
        return job if job["status"] == status else None

    found: dict[str, Any] = wait_for(check, what=f"job {job_id} to be {status}")
    return found


def test_a_job_is_accepted_runs_and_shows_its_result(
    server: HooklineProcess, api: httpx.Client
) -> None:
    (server.workdir / "deliver-ok-r-ok").touch()
    response = api.post("/jobs/report", json={"report_id": "r-ok", "pages": 3})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["jobId"].startswith("job_")
    assert response.headers["location"] == f"/jobs/{body['jobId']}"
    assert "idempotent-replayed" not in response.headers

    job = wait_job(api, body["jobId"], "succeeded")
    assert job["result"] == {"report": "r-ok", "pages": 3}
    assert (job["jobId"], job["name"], job["attempts"], job["error"]) == (
        body["jobId"], "report", 1, None
    )  # fmt: skip
    assert job["createdAt"] == job["runAt"] and job["updatedAt"] >= job["createdAt"]
    # the job is an event of source "jobs" in the admin API, with its run and steps
    with server.admin() as admin:
        detail = admin.get(f"/admin/events/{body['jobId']}").json()
        listed = admin.get("/admin/events", params={"source": "jobs", "type": "report"}).json()
    assert (detail["source"], detail["type"], detail["status"]) == ("jobs", "report", "succeeded")
    assert detail["payload"] == {"report_id": "r-ok", "pages": 3}
    assert detail["headers"]["authorization"] == "[redacted]"
    assert [s["name"] for s in detail["runs"][0]["steps"]] == ["render", "deliver"]
    assert body["jobId"] in [item["id"] for item in listed["items"]]
    with server.admin() as admin:
        page = admin.get(f"/admin/ui/events/{body['jobId']}").text
        rows = admin.get("/admin/", params={"source": "jobs"}).text
    assert "<dt>Job</dt>" in page and "<dt>Job id</dt>" in page and "Provider event id" not in page
    assert f"/admin/ui/events/{body['jobId']}" in rows and '<option value="jobs">' in rows


def test_a_job_without_a_model_takes_any_json_value(api: httpx.Client) -> None:
    for payload in ([1, "two"], "text", 42, None, {"nested": {"x": True}}):
        response = api.post("/jobs/echo", content=json.dumps(payload))
        assert response.status_code == 202, response.text
        assert wait_job(api, response.json()["jobId"], "succeeded")["result"] == payload


def test_a_result_orjson_cannot_write_is_shown_not_a_500(
    server: HooklineProcess, api: httpx.Client
) -> None:
    """A lone surrogate is valid JSON data: the job's result holding one is shown (as its
    escape) by GET /jobs/{id} and ``hookline jobs show``, which answered 500 and crashed."""
    response = api.post("/jobs/echo", content=b'{"a": "\\ud800"}')
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    assert wait_job(api, job_id, "succeeded")["result"] == {"a": "\ud800"}
    shown = hookline("jobs", "show", job_id, "--config", server.config_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["result"] == {"a": "\ud800"}


def test_nan_is_no_json_for_a_job_with_a_model_either(api: httpx.Client) -> None:
    """pydantic's parser takes NaN and Infinity; the handler would then get None as
    event.data. Both gateways' paths answer 400 invalid_json."""
    for body in (b'{"report_id": "r", "x": NaN}', b'{"report_id": "r", "x": -Infinity}'):
        response = api.post("/jobs/report", content=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_json"


def test_a_json_body_sent_as_a_form_is_still_the_jobs_json_payload(api: httpx.Client) -> None:
    # `curl -d '{...}'` labels JSON as a urlencoded form: a job's body is JSON whatever the
    # label, for the gateway's validation and for Event.data alike
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    payload = {"a": 1, "b": ["x", "y"]}
    response = api.post("/jobs/echo", content=json.dumps(payload), headers=form)
    assert response.status_code == 202, response.text
    assert wait_job(api, response.json()["jobId"], "succeeded")["result"] == payload


def test_hookline_delay_sets_run_at(api: httpx.Client) -> None:
    response = api.post("/jobs/echo", json={}, headers={"Hookline-Delay": "1d"})
    assert response.status_code == 202
    job = api.get(response.headers["location"]).json()
    assert job["status"] == "queued"
    assert ts(job["runAt"]) - ts(job["createdAt"]) == pytest.approx(86_400, abs=0.01)


@pytest.mark.parametrize(
    ("headers", "content", "status", "code"),
    [
        ({}, b'{"report_id": ', 400, "invalid_json"),
        ({}, b"", 400, "invalid_json"),
        ({}, b"\xff\xfe", 400, "invalid_json"),
        ({"Idempotency-Key": ""}, b"{}", 400, "invalid_header"),
        ({"Idempotency-Key": "k" * 256}, b"{}", 400, "invalid_header"),
        ({"Idempotency-Key": "café".encode()}, b"{}", 400, "invalid_header"),
        ({"Idempotency-Key": "tab\tkey"}, b"{}", 400, "invalid_header"),
        ({"Idempotency-Key": '"unterminated'}, b"{}", 400, "invalid_header"),
        ({"Idempotency-Key": '""'}, b"{}", 400, "invalid_header"),
        ({"Hookline-Delay": "soon"}, b"{}", 400, "invalid_header"),
        ({"Hookline-Delay": "-5"}, b"{}", 400, "invalid_header"),
        ({"Hookline-Delay": "1000d"}, b"{}", 400, "invalid_header"),
        ({}, b"x" * (MAX_BODY + 1), 413, "payload_too_large"),
    ],
    ids=[
        "cut-json", "empty-body", "not-utf8", "empty-key", "long-key", "non-ascii-key", "tab-key",
        "bad-quoted-key", "empty-quoted-key", "bad-delay", "negative-delay", "long-delay",
        "too-large",
    ],
)  # fmt: skip
def test_bad_requests_are_refused_and_store_nothing(
    server: HooklineProcess,
    api: httpx.Client,
    headers: dict[str, str | bytes],
    content: bytes,
    status: int,
    code: str,
) -> None:
    with server.admin() as admin:
        before = admin.get("/admin/events", params={"source": "jobs", "limit": 500}).json()
        response = api.post("/jobs/echo", content=content, headers=headers)
        after = admin.get("/admin/events", params={"source": "jobs", "limit": 500}).json()
    assert response.status_code == status, response.text
    assert response.json()["error"] == code and response.json()["detail"]
    assert after["items"] == before["items"]


def test_a_streamed_body_over_the_limit_is_413(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192  # no Content-Length: read until past the limit

    response = api.post("/jobs/echo", content=chunks())
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


def test_a_body_the_models_parser_refuses_says_why_and_where(api: httpx.Client) -> None:
    # JSON by its grammar, but a lone surrogate is no Unicode text: the parser says so
    response = api.post("/jobs/report", content=b'{"title": "\\ud800", "pages": 1}')
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    detail = response.json()["detail"]
    assert "hex escape at line 1 column" in detail, detail  # a high surrogate alone
    assert "\\ud800" not in detail  # the input itself is never echoed


def test_a_payload_that_fails_the_model_is_422_with_pydantics_errors(api: httpx.Client) -> None:
    response = api.post("/jobs/report", json={"pages": 0, "extra": 1})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_payload" and "ReportRequest" in body["detail"]
    assert body["errors"] == [
        {"loc": ["report_id"], "msg": "Field required", "type": "missing"},
        {
            "loc": ["pages"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        },
    ]


def test_unknown_job_and_unknown_job_id_are_404(server: HooklineProcess, api: httpx.Client) -> None:
    response = api.post("/jobs/no-such-job", json={})
    assert (response.status_code, response.json()["error"]) == (404, "unknown_job")
    for job_id in ("job_00000000000000000000000000", "evt_not_a_job"):
        response = api.get(f"/jobs/{job_id}")
        assert (response.status_code, response.json()["error"]) == (404, "not_found")
        response = api.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 404
    assert api.get("/jobs/a/b/c").status_code == 404
    assert api.delete("/jobs/echo").status_code == 405
    assert api.get("/jobs/x/cancel").status_code == 405


def test_an_api_key_is_required_and_the_admin_token_is_none(
    server: HooklineProcess, api: httpx.Client
) -> None:
    job_id = api.post("/jobs/echo", json={}).json()["jobId"]
    requests = [
        ("POST", "/jobs/echo"),
        ("GET", f"/jobs/{job_id}"),
        ("POST", f"/jobs/{job_id}/cancel"),
        ("GET", "/jobs/openapi.json"),
        ("POST", "/jobs/no-such-job"),  # 401 before 404: job names are not probed
    ]
    for credentials in (None, "wrong-key", ADMIN_TOKEN, API_KEY + "x", API_KEY[:-1]):
        headers = {"Authorization": f"Bearer {credentials}"} if credentials else {}
        for method, path in requests:
            response = httpx.request(method, server.url + path, headers=headers, json={})
            assert response.status_code == 401, (credentials, path)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
    # and the API key opens nothing of the admin API
    assert httpx.get(f"{server.url}/admin/events", headers=AUTH).status_code == 401
    assert api.get(f"/jobs/{job_id}").status_code == 200


def test_cancel_a_queued_job_then_409(api: httpx.Client) -> None:
    job_id = api.post("/jobs/echo", json={}, headers={"Hookline-Delay": "1h"}).json()["jobId"]
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json() == {"jobId": job_id, "status": "cancelled"}
    assert api.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    again = api.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["error"] == "job_finished"


def test_cancel_a_running_job(server: HooklineProcess, api: httpx.Client) -> None:
    job_id = api.post("/jobs/wait", json={}).json()["jobId"]
    wait_for(lambda: f"wait-start {job_id}" in effects(server), what="the job to start")
    assert api.get(f"/jobs/{job_id}").json()["status"] == "running"
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 202
    assert api.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    (server.workdir / f"release-{job_id}").touch()


def test_a_finished_job_cannot_be_cancelled(api: httpx.Client) -> None:
    job_id = api.post("/jobs/echo", json={"done": True}).json()["jobId"]
    wait_job(api, job_id, "succeeded")
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json() == {
        "error": "job_finished",
        "detail": "the job has already finished (succeeded)",
    }


# -- idempotency --------------------------------------------------------------------------------


def test_twenty_concurrent_requests_with_one_key_make_one_job(
    server: HooklineProcess, api: httpx.Client
) -> None:
    key = f"once-{secrets.token_hex(4)}"
    payload = {"order": key, "items": [1, 2, 3]}
    barrier = threading.Barrier(20)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=20) as client:
            barrier.wait()
            response = client.post("/jobs/echo", json=payload, headers={"Idempotency-Key": key})
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 20
    job_ids = {a.json()["jobId"] for a in answers}
    assert len(job_ids) == 1
    (job_id,) = job_ids
    replayed = [a.headers.get("idempotent-replayed") for a in answers]
    assert replayed.count(None) == 1 and replayed.count("true") == 19
    assert all(a.headers["location"] == f"/jobs/{job_id}" for a in answers)

    assert wait_job(api, job_id, "succeeded")["result"] == payload
    with server.admin() as admin:
        detail = admin.get(f"/admin/events/{job_id}").json()
        everything = admin.get("/admin/events", params={"source": "jobs", "limit": 500}).json()
    assert len(detail["runs"]) == 1
    assert sum(1 for item in everything["items"] if item["eventId"] == f"echo/{key}") == 1
    assert effects(server).count(f"echo {job_id}") == 1  # the side effect ran once
    with server.admin() as admin:
        assert f'<dd class="mono wrap">{key}</dd>' in admin.get(f"/admin/ui/events/{job_id}").text
    # the same request later still answers with the job, and runs nothing
    later = api.post("/jobs/echo", json=payload, headers={"Idempotency-Key": f'"{key}"'})
    assert later.status_code == 202 and later.json() == {"jobId": job_id, "status": "succeeded"}
    assert later.headers["idempotent-replayed"] == "true"


def test_same_key_other_body_is_422_and_key_order_is_the_same_body(api: httpx.Client) -> None:
    key = f"k-{secrets.token_hex(4)}"
    first = api.post(
        "/jobs/echo", content=b'{"a": 1, "b": [1, 2]}', headers={"Idempotency-Key": key}
    )
    assert first.status_code == 202
    same = api.post("/jobs/echo", content=b'{"b":[1,2],"a":1}', headers={"Idempotency-Key": key})
    assert same.status_code == 202 and same.json()["jobId"] == first.json()["jobId"]
    other = api.post(
        "/jobs/echo", content=b'{"a": 2, "b": [1, 2]}', headers={"Idempotency-Key": key}
    )
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    # keys are per job name: the same key on another job is another job
    elsewhere = api.post("/jobs/report", json={"report_id": "x"}, headers={"Idempotency-Key": key})
    assert elsewhere.status_code == 202 and "idempotent-replayed" not in elsewhere.headers
    assert elsewhere.json()["jobId"] != first.json()["jobId"]


def test_after_failed_the_same_request_resumes_it_without_repeating_a_step(
    server: HooklineProcess, api: httpx.Client
) -> None:
    report = f"r-{secrets.token_hex(4)}"
    request = {"json": {"report_id": report}, "headers": {"Idempotency-Key": f"key-{report}"}}
    job_id = api.post("/jobs/report", **request).json()["jobId"]  # type: ignore[arg-type]
    failed = wait_job(api, job_id, "failed")
    assert failed["error"] == f"NonRetryableError: mailbox for {report} is full"

    (server.workdir / f"deliver-ok-{report}").touch()
    again = api.post("/jobs/report", **request)  # type: ignore[arg-type]
    assert again.status_code == 202
    assert again.json() == {"jobId": job_id, "status": "queued"}
    assert again.headers["idempotent-replayed"] == "true"
    done = wait_job(api, job_id, "succeeded")
    assert done["result"] == {"report": report, "pages": 1} and done["attempts"] == 2
    log = effects(server)
    assert log.count(f"render {report}") == 1  # the step that succeeded was not repeated
    assert log.count(f"deliver {report}") == 2


# -- the OpenAPI document -----------------------------------------------------------------------


def test_the_openapi_document_validates_and_has_each_jobs_payload_schema(
    api: httpx.Client,
) -> None:
    response = api.get("/jobs/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)  # openapi-spec-validator: a valid OpenAPI 3.1 document
    assert document == api.get("/jobs/openapi.json").json()  # stable
    paths = document["paths"]
    assert {"/jobs/report", "/jobs/echo", "/jobs/leak", "/jobs/wait"} <= set(paths)
    report = paths["/jobs/report"]["post"]
    assert report["operationId"] == "enqueueReport"
    ref = report["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    expected = ReportRequest.model_json_schema(mode="validation")
    assert document["components"]["schemas"][name] == expected
    echo_schema = paths["/jobs/echo"]["post"]["requestBody"]["content"]["application/json"]
    assert "$ref" not in echo_schema["schema"] and "type" not in echo_schema["schema"]
    schemas = document["components"]["schemas"]
    assert set(schemas["Job"]["required"]) == {
        "jobId", "name", "status", "attempts", "result", "error", "createdAt", "updatedAt",
        "runAt",
    }  # fmt: skip
    assert schemas["PayloadError"]["required"] == ["loc", "msg", "type"]
    assert {"getJob", "cancelJob"} <= {
        op["operationId"] for item in paths.values() for op in item.values()
    }


# -- durability and configuration ----------------------------------------------------------------


def test_every_accepted_job_survives_kill_9(tmp_path: Path, db_url: str) -> None:
    """A 202 is sent after the commit (same fsync rule as webhooks): kill -9 right after the
    last one, restart, and every accepted job is there with its run."""
    config = base_config(db_url, handlers=["tests.e2e.job_handlers"])  # no worker: all queued
    server = HooklineProcess(tmp_path, config).start()
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=15) as client:

            def post(n: int) -> str:
                headers = {"Idempotency-Key": f"k-{n}"} if n % 2 else {}
                response = client.post("/jobs/echo", json={"n": n}, headers=headers)
                assert response.status_code == 202, response.text
                job_id: str = response.json()["jobId"]
                return job_id

            with ThreadPoolExecutor(16) as pool:
                accepted = list(pool.map(post, range(200)))
        server.kill9()
        server.start()
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=15) as client:
            for n, job_id in enumerate(accepted):
                job = client.get(f"/jobs/{job_id}").json()
                assert job["status"] == "queued", (n, job)
    finally:
        server.stop()


def test_without_api_keys_the_gateway_refuses_everything(tmp_path: Path, sqlite_url: str) -> None:
    config = base_config(sqlite_url, handlers=["tests.e2e.job_handlers"], api_keys=[])
    server = HooklineProcess(tmp_path, config).start()
    try:
        for credentials in ("", "Bearer", f"Bearer {API_KEY}", f"Bearer {ADMIN_TOKEN}"):
            headers = {"Authorization": credentials} if credentials else {}
            response = httpx.post(f"{server.url}/jobs/echo", json={}, headers=headers)
            assert response.status_code == 401
            assert response.json() == {
                "error": "unauthorized",
                "detail": "no API key is configured",
            }
    finally:
        server.stop()
