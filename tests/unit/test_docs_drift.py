"""The user docs cannot drift from the code they describe.

- docs/configuration.md documents exactly the keys of the settings models (walked
  recursively from ``Settings``), each with its real default.
- hookline.example.toml shows every key (set, or as a commented ``# key = ...`` line).
- docs/admin-api.md has a section with a curl line for every route of the OpenAPI document.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from hookline.config import Settings
from hookline.web.openapi import PATHS

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text("utf-8")
ADMIN_API = (ROOT / "docs" / "admin-api.md").read_text("utf-8")
EXAMPLE = (ROOT / "hookline.example.toml").read_text("utf-8")
# Tables whose keys are the user's own names (``[secrets]``): documented as a section.
FREE_FORM = {"secrets"}


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The settings model a field holds (and whether it is a list of them), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            model, _ = _model_of(arg)
            if model is not None:
                return model, origin is list
    return None, False


def settings_keys() -> dict[str, dict[str, Any]]:
    """``{"server": {"host": "127.0.0.1", ...}, "sources": {"name": <required>, ...}}``."""
    tables: dict[str, dict[str, Any]] = {}
    for table, field in Settings.model_fields.items():
        if table in FREE_FORM:
            continue
        model, _ = _model_of(field.annotation)
        assert model is not None, f"top-level key {table} is not a table"
        keys: dict[str, Any] = {}
        for name, sub in model.model_fields.items():
            assert _model_of(sub.annotation)[0] is None, f"{table}.{name}: nested table"
            if sub.default_factory is not None:
                keys[name] = sub.default_factory()  # type: ignore[call-arg]
            else:
                keys[name] = sub.default
        tables[table] = keys
    return tables


def toml_literal(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def documented_keys() -> dict[str, dict[str, str]]:
    """Table rows of docs/configuration.md under each ``## `[table]` `` heading."""
    tables: dict[str, dict[str, str]] = {}
    table = None
    for line in CONFIGURATION.splitlines():
        if line.startswith("#"):  # a heading: a table's section, or other text
            heading = re.match(r"^#{2,3} `\[\[?(\w+)\]\]?`", line)
            table = heading.group(1) if heading else None
            if table is not None:
                tables.setdefault(table, {})
            continue
        row = re.match(r"^\| `(\w+)` \| ([^|]*) \|", line)
        if row and table is not None:
            assert row.group(1) not in tables[table], f"{table}.{row.group(1)} twice"
            tables[table][row.group(1)] = row.group(2).strip()
    return tables


def test_configuration_md_documents_every_key_and_no_other() -> None:
    code = {t: set(keys) for t, keys in settings_keys().items()}
    docs = {t: set(keys) for t, keys in documented_keys().items()}
    missing = {f"{t}.{k}" for t, keys in code.items() for k in keys - docs.get(t, set())}
    stale = {f"{t}.{k}" for t, keys in docs.items() for k in keys - code.get(t, set())}
    assert not missing, f"keys missing from docs/configuration.md: {sorted(missing)}"
    assert not stale, f"docs/configuration.md documents keys that do not exist: {sorted(stale)}"


def test_configuration_md_states_each_default() -> None:
    docs = documented_keys()
    for table, keys in settings_keys().items():
        for key, default in keys.items():
            cell = docs[table][key]
            expected = toml_literal(default)
            shown = re.match(r"`([^`]*)`", cell)
            stated = shown.group(1) if shown else cell.split(" ", 1)[0]
            assert stated == expected, f"{table}.{key}: docs say {cell!r}, default is {expected}"


def example_keys() -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    table = None
    for line in EXAMPLE.splitlines():
        header = re.match(r"^#?\s*\[\[?(\w+)\]\]?\s*(#.*)?$", line)
        if header:
            table = header.group(1)
            tables.setdefault(table, set())
            continue
        key = re.match(r"^#?\s*(\w+)\s*=", line)
        if key and table is not None:
            tables[table].add(key.group(1))
    return tables


def test_the_example_config_shows_every_key() -> None:
    example = example_keys()
    for table, keys in settings_keys().items():
        missing = set(keys) - example.get(table, set())
        assert not missing, f"hookline.example.toml lacks {table}: {sorted(missing)}"
    assert set(example) <= set(Settings.model_fields)
    assert FREE_FORM <= set(example), "hookline.example.toml lacks a free-form table"


def test_every_top_level_table_has_a_section() -> None:
    for table in Settings.model_fields:
        assert re.search(rf"^## `\[\[?{table}\]\]?`", CONFIGURATION, flags=re.M), table


def test_admin_api_md_shows_every_route_with_a_curl_line() -> None:
    sections = re.split(r"^### ", ADMIN_API, flags=re.M)[1:]
    by_route = {section.split("\n", 1)[0].strip().strip("`"): section for section in sections}
    for path, operations in PATHS.items():
        for method in operations:
            route = f"{method.upper()} {path}"
            assert route in by_route, f"docs/admin-api.md has no section for {route}"
            text = by_route[route].replace("\\\n", " ")  # continued lines: one command
            curl = [line for line in text.splitlines() if line.startswith("curl ")]
            assert curl, f"docs/admin-api.md: no curl line for {route}"
            concrete = re.sub(r"\{\w+\}", '[^/"]+', path)
            assert any(re.search(concrete, line) for line in curl), route
            if method != "get":
                assert any(f"-X {method.upper()}" in line for line in curl), route
