"""``hookline jobs enqueue|show|openapi`` as processes, then the job run by a server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from openapi_spec_validator import validate

from tests.support.cli import hookline
from tests.support.clients import wait_for
from tests.support.server import API_KEY, HooklineProcess, base_config


def test_enqueue_show_and_openapi(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "hookline.toml"
    config.write_text(base_config(sqlite_url, handlers=["tests.e2e.job_handlers"], workers=1))
    assert hookline("migrate", "--config", config).returncode == 0

    def run(*args: str | Path) -> tuple[int, str, str]:
        result = hookline("jobs", *args, "--config", config)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout, result.stderr

    code, out, _ = run("enqueue", "echo", "--payload", '{"n": 1}', "--idempotency-key", "cli-1")
    assert code == 0
    answer = json.loads(out)
    assert answer["status"] == "queued" and answer["jobId"].startswith("job_")
    code, out, err = run("enqueue", "echo", "--payload", '{"n":1}', "--idempotency-key", "cli-1")
    assert code == 0 and json.loads(out)["jobId"] == answer["jobId"]
    assert f"names job {answer['jobId']} (replayed)" in err
    code, _, err = run("enqueue", "echo", "--payload", '{"n": 2}', "--idempotency-key", "cli-1")
    assert code == 1 and "idempotency_key_reused" in err

    code, _, err = run("enqueue", "report", "--payload", '{"pages": 0}')
    assert code == 1
    assert "invalid_payload" in err and "report_id: Field required" in err
    assert "pages: Input should be greater than or equal to 1" in err
    assert run("enqueue", "nope")[0] == 1
    assert run("enqueue", "echo", "--payload", "{nope")[0] == 1
    code, _, err = run("enqueue", "echo", "--idempotency-key", "")
    assert code == 2 and "Idempotency-Key is empty" in err
    assert run("enqueue", "echo", "--delay", "soon")[0] == 2

    code, out, _ = run("show", answer["jobId"])
    assert code == 0 and json.loads(out)["status"] == "queued"
    assert run("show", "job_missing")[0] == 1

    code, out, _ = run("openapi")
    assert code == 0
    document = json.loads(out)
    validate(document)
    assert run("openapi", "--out", tmp_path / "openapi.json")[0] == 0
    assert json.loads((tmp_path / "openapi.json").read_text()) == document

    # a server on the same database runs the job; `show` then has its result
    server = HooklineProcess(tmp_path, config.read_text(), env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    server.start()
    try:
        served = httpx.get(
            f"{server.url}/jobs/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"}
        ).json()
        assert served == document

        def done() -> bool:
            code, out, _ = run("show", answer["jobId"])
            return code == 0 and json.loads(out)["status"] == "succeeded"

        wait_for(done, what="the job to succeed")
    finally:
        server.stop()
    code, out, _ = run("show", answer["jobId"])
    assert json.loads(out)["result"] == {"n": 1}
