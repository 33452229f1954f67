"""``/jobs/openapi.json`` describes the gateway as it really answers: schemathesis generates
requests (valid and invalid) from the document, sends them to a live server, and checks every
answer against it (status codes, bodies, content types, no 5xx, the key required)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode

from tests.support import fuzz
from tests.support.server import API_KEY, HooklineProcess, base_config

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OPERATIONS = [
    ("POST", "/jobs/report"),
    ("POST", "/jobs/echo"),
    ("GET", "/jobs/{jobId}"),
    ("POST", "/jobs/{jobId}/cancel"),
]


_keys = itertools.count()


def _fresh_key(case: Any) -> Any:
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"fuzz-{next(_keys)}"
    return case


@pytest.fixture(scope="module", params=fuzz.BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HooklineProcess]:
    workdir: Path = tmp_path_factory.mktemp("jobs-fuzz")
    with fuzz.database(request, workdir) as url:
        # no worker: generated jobs stay queued (and cancellable); nothing runs their handlers
        config = base_config(url, handlers=["tests.e2e.job_handlers"])
        server = HooklineProcess(workdir, config).start()
        yield server
        server.stop()


@pytest.fixture(scope="module")
def schema(live: HooklineProcess) -> Any:
    loaded = schemathesis.openapi.from_url(f"{live.url}/jobs/openapi.json", headers=AUTH)
    loaded.config.update(base_url=live.url, headers=AUTH)
    return loaded


# invalid input exists where there is input beyond a path id (a job id is any string)
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "{jobId}" not in path
]


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_fuzzed_requests_conform(
    schema: Any, live: HooklineProcess, method: str, path: str, mode: GenerationMode
) -> None:
    strategy = schema[path][method].as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:  # a key used with another payload is a 422 by design
        strategy = strategy.map(_fresh_key)

    fuzz.call_and_validate_each(strategy, AUTH, examples=10)
