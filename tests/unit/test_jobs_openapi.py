"""The jobs gateway's OpenAPI document stays valid whatever the user's models and job names:
a payload model named like one of hookline's own shapes (``Job``, ``Error``), and job names
that differ only in ``-``, ``_`` or ``.``."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from hookline.errors import PipelineError
from hookline.pipeline import JOB_SOURCE, Context, Event, HandlerSpec, Registry, handler
from hookline.web.jobs_openapi import document


class JobAccepted(BaseModel):  # a user's nested model, named like a hookline shape
    ok: bool


class Job(BaseModel):
    title: str
    accepted: JobAccepted


class Error(BaseModel):
    message: str


async def run(event: Event, ctx: Context) -> None: ...


def spec(job: str, payload: type[BaseModel] | None = None) -> HandlerSpec:
    return HandlerSpec(f"jobs:{job}", run, JOB_SOURCE, job, payload=payload)


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        own = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def test_models_named_like_hookline_shapes_and_alike_job_names_keep_it_valid() -> None:
    registry = Registry(
        [spec("send-email", Job), spec("send_email", Error), spec("send.email"), spec("other", Job)]
    )
    doc = document(registry)
    validate(doc)  # every $ref resolves, operation ids are unique
    schemas = doc["components"]["schemas"]
    assert {"Job", "Error", "JobAccepted", "JobPayload", "ErrorPayload"} <= set(schemas)
    assert "jobId" in schemas["Job"]["properties"]  # hookline's own shape kept its name
    assert "title" in schemas["JobPayload"]["properties"]
    nested = schemas["JobPayload"]["properties"]["accepted"]["$ref"]
    assert schemas[nested.rsplit("/", 1)[1]]["properties"] == {
        "ok": {"title": "Ok", "type": "boolean"}
    }
    assert all(ref.rsplit("/", 1)[1] in schemas for ref in _refs(doc))
    body = doc["paths"]["/jobs/send-email"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"].endswith("/JobPayload")
    names = ("send-email", "send.email", "send_email")
    ids = {name: doc["paths"][f"/jobs/{name}"]["post"]["operationId"] for name in names}
    assert ids == {
        n: f"enqueueSendEmail_{hashlib.sha256(n.encode()).hexdigest()[:6]}" for n in names
    }
    assert doc["paths"]["/jobs/other"]["post"]["operationId"] == "enqueueOther"
    # an id never moves to another job when one is added or removed
    fewer = document(Registry([spec("send-email", Job), spec("send_email", Error)]))
    for name in ("send-email", "send_email"):
        assert fewer["paths"][f"/jobs/{name}"]["post"]["operationId"] == ids[name]


def test_a_job_named_like_the_document_is_refused() -> None:
    with pytest.raises(PipelineError, match=r"'openapi\.json' is reserved"):
        handler(job="openapi.json")
