"""``GET /jobs/openapi.json``: an OpenAPI 3.1 document of the configured jobs.

Built from pydantic models (``jobs_shapes``, and each job's ``payload=`` model) with
``models_json_schema``, so the schemas are what the gateway validates and answers. One
path per job (``POST /jobs/{name}``) with its payload's schema; a job without a model takes
any JSON value, and its schema says so (``{}``, which ``openapi-typescript`` reads as
``unknown``). The output is deterministic — jobs sorted by name, fixed operation ids
(``enqueue`` + the job name in PascalCase, ``getJob``, ``cancelJob``) — so generated types
only change when a job or a model does.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from hookline import __version__
from hookline.jobs import DELAY_PATTERN, MAX_KEY_CHARS
from hookline.pipeline import Registry
from hookline.web.jobs_shapes import Error, InvalidPayload, Job, JobAccepted

Schema = dict[str, Any]
_PREFIX = "#/components/schemas/"
_REF = _PREFIX + "{model}"


def operation_id(job: str) -> str:
    """``generate-report`` → ``enqueueGenerateReport``."""
    return "enqueue" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_.]", job))


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json({"$ref": _REF.format(model="Error")}, description)


_UNAUTHORIZED = _error("Missing or wrong API key (`Authorization: Bearer <key>`).")
_HEADERS: list[Schema] = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Per job name: the same key and payload answer with the original job "
        "(header `Idempotent-Replayed: true`), also under concurrency; another payload is 422 "
        "`idempotency_key_reused`; a `failed` job is resumed. At most "
        f'{MAX_KEY_CHARS} printable ASCII characters; a quoted string (`"abc"`) is accepted.',
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS + 2},
    },
    {
        "name": "Hookline-Delay",
        "in": "header",
        "required": False,
        "description": "Do not run before this delay: `30` (seconds), `30s`, `5m`, `2h`, `1d` "
        "(at most 8 digits of seconds, 6 of minutes, 4 of hours, 3 of days).",
        "schema": {"type": "string", "pattern": f"^(?:{DELAY_PATTERN})$"},
    },
]


def _enqueue(job: str, payload: Schema, has_model: bool) -> Schema:
    accepted = _json({"$ref": _REF.format(model="JobAccepted")}, "The job is stored durably.")
    accepted["headers"] = {
        "Location": {"schema": {"type": "string"}, "description": "`/jobs/{jobId}`"},
        "Idempotent-Replayed": {
            "schema": {"type": "string", "enum": ["true"]},
            "description": "Present when the Idempotency-Key named an existing job.",
        },
    }
    unprocessable = (
        {
            "anyOf": [
                {"$ref": _REF.format(model="InvalidPayload")},
                {"$ref": _REF.format(model="Error")},
            ]
        }
        if has_model
        else {"$ref": _REF.format(model="Error")}
    )
    return {
        "operationId": operation_id(job),
        "summary": f"Enqueue the job {job}",
        "parameters": _HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": payload}}},
        "responses": {
            "202": accepted,
            "400": _error("`invalid_json`: the body is not JSON; `invalid_header`."),
            "401": _UNAUTHORIZED,
            "413": _error("`payload_too_large`: the body is over `[server] max_body_bytes`."),
            "422": _json(
                unprocessable,
                "`invalid_payload` (with pydantic's `errors`), or `idempotency_key_reused`.",
            ),
            "503": _error("`storage_unavailable`: try again (see `Retry-After`)."),
        },
    }


_JOB_ID: Schema = {
    "name": "jobId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}


_OWN: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (JobAccepted, "serialization"),
    (Job, "serialization"),
    (Error, "serialization"),
    (InvalidPayload, "serialization"),
]


def _renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every ``$ref`` to a renamed schema pointing at its new name."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(_PREFIX) and ref[len(_PREFIX) :] in names:
            return {**value, "$ref": _REF.format(model=names[ref[len(_PREFIX) :]])}
        return {key: _renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    return value


def _payload_schemas(
    payloads: list[type[BaseModel]], taken: set[str]
) -> tuple[dict[type[BaseModel], Schema], Schema]:
    """Each payload model's schema and the named schemas they use, built apart from
    hookline's own: a user's model named ``Job`` or ``Error`` becomes ``JobPayload`` or
    ``ErrorPayload`` (and ``JobPayload2``…) instead of renaming hookline's (pydantic would
    make both ``Job-Input``/``Job-Output`` and leave the document's refs pointing nowhere)."""
    if not payloads:
        return {}, {}
    refs, top = models_json_schema(
        [(m, "validation") for m in payloads], ref_template=_REF, by_alias=True
    )
    defs: Schema = top.get("$defs", {})
    names: dict[str, str] = {}
    for name in defs:
        if name in taken:
            new, number = f"{name}Payload", 2
            while new in taken or new in defs:
                new, number = f"{name}Payload{number}", number + 1
            names[name] = new
            taken.add(new)
    renamed_defs = {names.get(name, name): _renamed(schema, names) for name, schema in defs.items()}
    by_model = {model: _renamed(dict(refs[(model, "validation")]), names) for model in payloads}
    return by_model, renamed_defs


def document(registry: Registry) -> Schema:
    specs = registry.jobs  # sorted by name
    _, own = models_json_schema(_OWN, ref_template=_REF, by_alias=True)
    own_defs: Schema = own.get("$defs", {})
    payloads = list(dict.fromkeys(spec.payload for spec in specs if spec.payload is not None))
    by_model, payload_defs = _payload_schemas(payloads, set(own_defs))
    paths: Schema = {}
    bases = Counter(operation_id(str(spec.job)) for spec in specs)
    for spec in specs:
        assert spec.job is not None
        payload: Schema = (
            dict(by_model[spec.payload])
            if spec.payload is not None
            else {"description": "Any JSON value (this job has no payload model)."}
        )
        operation = _enqueue(spec.job, payload, spec.payload is not None)
        if bases[operation["operationId"]] > 1:  # send-email and send_email: both renamed
            # after their own name, so adding a job never moves an id to another job
            digest = hashlib.sha256(spec.job.encode()).hexdigest()[:6]
            operation["operationId"] += f"_{digest}"
        paths[f"/jobs/{spec.job}"] = {"post": operation}
    paths["/jobs/{jobId}"] = {
        "get": {
            "operationId": "getJob",
            "summary": "A job and its status",
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json({"$ref": _REF.format(model="Job")}, "The job."),
                "401": _UNAUTHORIZED,
                "404": _error("`not_found`: no job with this id."),
            },
        }
    }
    paths["/jobs/{jobId}/cancel"] = {
        "post": {
            "operationId": "cancelJob",
            "summary": "Cancel a job that has not finished",
            "parameters": [_JOB_ID],
            "responses": {
                "202": _json({"$ref": _REF.format(model="JobAccepted")}, "Cancelled."),
                "401": _UNAUTHORIZED,
                "404": _error("`not_found`: no job with this id."),
                "409": _error("`job_finished`: the job has finished already."),
            },
        }
    }
    paths["/jobs/openapi.json"] = {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document",
            "responses": {
                "200": _json({"type": "object"}, "The OpenAPI document."),
                "401": _UNAUTHORIZED,
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hookline jobs gateway",
            "version": __version__,
            "description": "Enqueue the configured jobs and follow them. Every request needs "
            "`Authorization: Bearer <key>` with a key of `[api] keys`.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted({**own_defs, **payload_defs}.items())),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
