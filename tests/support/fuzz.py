"""Shared set-up of the OpenAPI fuzz tests (``tests/e2e/test_*_openapi_fuzz.py``).

``EXAMPLES`` per operation and generation mode is small so ``make test`` stays quick;
``HOOKLINE_FUZZ_EXAMPLES=500`` makes the long run documented in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.pg import cloned_database

EXAMPLES = int(os.environ.get("HOOKLINE_FUZZ_EXAMPLES", "0")) or None

#: the backends a module-scoped live server runs on
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def database(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """The URL of a fresh database of the backend ``request.param`` names."""
    if request.param == "sqlite":
        yield f"sqlite:///{workdir / 'h.db'}"
        return
    with cloned_database(request.getfixturevalue("pg_template")) as url:
        yield url


def call_and_validate_each(
    strategy: st.SearchStrategy[Any], headers: Mapping[str, str], examples: int
) -> None:
    """Send each generated case to the live server; its answer must match the schema."""

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES or examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=dict(headers))

    check()
