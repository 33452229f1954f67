from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hookline.errors import PipelineError, StartupError
from hookline.pipeline import JOB_SOURCE, Context, Event, handler, load_handlers


def test_handlers_match_source_and_type_globs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_handlers.py").write_text(
        "from hookline import handler\n"
        "@handler('stripe', 'invoice.*')\n"
        "async def invoices(event, ctx): ...\n"
        "@handler('stripe', 'invoice.paid', max_attempts=3)\n"
        "async def paid(event, ctx): ...\n"
        "@handler('github')\n"
        "async def everything(event, ctx): ...\n"
        "@handler(job='report')\n"
        "async def report(event, ctx): ...\n"
        "def not_a_handler(): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_handlers(["my_handlers"])
    assert len(registry) == 4
    names = lambda src, typ: sorted(s.name for s in registry.matching(src, typ))  # noqa: E731
    assert names("stripe", "invoice.paid") == ["my_handlers:invoices", "my_handlers:paid"]
    assert names("stripe", "invoice.payment_failed") == ["my_handlers:invoices"]
    assert names("stripe", "Invoice.paid") == []  # case-sensitive
    assert names("stripe", "charge.succeeded") == []
    assert names("github", "pull_request.opened") == ["my_handlers:everything"]
    assert names(JOB_SOURCE, "report") == ["my_handlers:report"]
    assert registry.has_job("report") and not registry.has_job("other")
    spec = registry.get("my_handlers:paid")
    assert spec is not None and spec.max_attempts == 3
    sys.modules.pop("my_handlers", None)


def test_a_module_that_does_not_import_is_a_startup_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_handlers.py").write_text("raise RuntimeError('no database url')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(StartupError, match=r"broken_handlers.*RuntimeError: no database url"):
        load_handlers(["broken_handlers"])
    with pytest.raises(StartupError, match="missing_module"):
        load_handlers(["missing_module"])


def test_handler_needs_exactly_one_of_source_or_job() -> None:
    with pytest.raises(PipelineError):
        handler()
    with pytest.raises(PipelineError):
        handler("stripe", job="x")
    with pytest.raises(PipelineError):
        handler("stripe", max_attempts=0)


def test_public_names_are_exported() -> None:
    import hookline.pipeline as pipeline

    assert pipeline.Context is Context and pipeline.Event is Event
    assert issubclass(pipeline.NonRetryableError, Exception)
