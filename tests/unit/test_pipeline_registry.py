from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hookline.errors import PipelineError, StartupError
from hookline.pipeline import (
    JOB_SOURCE,
    Context,
    Event,
    Registry,
    handler,
    identities,
    load_handlers,
)


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


def test_a_package_registers_the_handlers_it_imports_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "shop_handlers"
    package.mkdir()
    (package / "billing.py").write_text(
        "from hookline import handler\n"
        "@handler('stripe', 'invoice.paid')\n"
        "async def paid(event, ctx): ...\n"
    )
    (package / "__init__.py").write_text(
        "from .billing import *\nfrom .billing import paid as also_paid\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        for modules in (["shop_handlers"], ["shop_handlers", "shop_handlers.billing"]):
            registry = load_handlers(modules)
            assert [s.name for s in registry.matching("stripe", "invoice.paid")] == [
                "shop_handlers.billing:paid"
            ], modules
    finally:
        for name in ["shop_handlers", "shop_handlers.billing"]:
            sys.modules.pop(name, None)


def test_handlers_registered_in_a_loop_or_a_factory_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "handler_factories.py").write_text(  # a factory of another module
        "from hookline import handler\n"
        "def on(kind):\n"
        "    @handler('github', kind, name=f'gh-{kind}')\n"
        "    async def handle(event, ctx): ...\n"
        "    return handle\n"
    )
    registry = _load(
        tmp_path,
        monkeypatch,
        "made_handlers",
        "def make(kind):\n"
        "    @handler('stripe', f'invoice.{kind}', name=f'on-{kind}')\n"
        "    async def on_invoice(event, ctx): ...\n"
        "for kind in ('paid', 'voided'):\n"
        "    make(kind)  # bound to no name of the module\n"
        "import handler_factories\n"
        "for kind in ('issues', 'release'):\n"
        "    handler_factories.on(kind)\n"
        "@handler('github', 'push')\n"
        "async def bound(event, ctx): ...\n",
    )
    sys.modules.pop("handler_factories", None)
    assert sorted(s.name for s in registry.matching("stripe", "invoice.paid")) == ["on-paid"]
    assert sorted(s.name for s in registry.matching("stripe", "invoice.voided")) == ["on-voided"]
    assert [s.name for s in registry.matching("github", "issues")] == ["gh-issues"]
    assert len(registry) == 5


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: str) -> Registry:
    (tmp_path / f"{name}.py").write_text("from hookline import handler\n" + code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        return load_handlers([name])
    finally:
        sys.modules.pop(name, None)


def test_stacked_decorators_register_each_with_its_source_and_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _load(
        tmp_path,
        monkeypatch,
        "stacked",
        "@handler('github', 'push')\n"
        "@handler('github', 'pull_request.opened')\n"
        "async def on_code(event, ctx): ...\n"
        "async def billing(event, ctx): ...\n"
        # the call form that used to drop the first registration without a word
        "handler('stripe', 'invoice.paid')(billing)\n"
        "handler('stripe', 'checkout.session.completed')(billing)\n"
        "@handler('stripe', 'charge.*')\n"
        "async def single(event, ctx): ...\n"
        "also_single = single  # bound twice: still one registration\n",
    )
    assert sorted(s.name for s in registry.specs) == [
        "stacked:billing[stripe:checkout.session.completed]",
        "stacked:billing[stripe:invoice.paid]",
        "stacked:on_code[github:pull_request.opened]",
        "stacked:on_code[github:push]",
        "stacked:single",  # registered once: the identity it always had
    ]
    names = lambda src, typ: [s.name for s in registry.matching(src, typ)]  # noqa: E731
    assert names("github", "push") == ["stacked:on_code[github:push]"]
    assert names("stripe", "invoice.paid") == ["stacked:billing[stripe:invoice.paid]"]
    assert names("stripe", "checkout.session.completed") == [
        "stacked:billing[stripe:checkout.session.completed]"
    ]


def test_an_explicit_name_is_the_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _load(
        tmp_path,
        monkeypatch,
        "named",
        "@handler('stripe', 'invoice.paid', name='invoices-v2')\n"
        "@handler('stripe', 'invoice.voided')\n"
        "async def invoices(event, ctx): ...\n",
    )
    assert sorted(s.name for s in registry.specs) == [
        "invoices-v2",
        "named:invoices[stripe:invoice.voided]",
    ]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (  # one function, the same source and type twice
            "@handler('stripe', 'invoice.paid')\n"
            "@handler('stripe', 'invoice.paid')\n"
            "async def twice(event, ctx): ...\n",
            [
                "identity 'clash:twice[stripe:invoice.paid]'",
                "clash:twice for stripe:invoice.paid and clash:twice for stripe:invoice.paid",
            ],
        ),
        (  # two functions, one name=
            "@handler('stripe', 'a', name='same')\n"
            "async def one(event, ctx): ...\n"
            "@handler('github', 'b', name='same')\n"
            "async def two(event, ctx): ...\n",
            ["identity 'same'", "clash:one for stripe:a and clash:two for github:b"],
        ),
        (  # two handlers of one job
            "@handler(job='report')\n"
            "async def one(event, ctx): ...\n"
            "@handler(job='report')\n"
            "async def two(event, ctx): ...\n",
            ["job 'report' has two handlers", "clash:one for job 'report' and clash:two"],
        ),
    ],
    ids=["same-registration-twice", "same-name", "two-handlers-one-job"],
)
def test_two_registrations_with_one_identity_are_a_startup_error_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, expected: list[str]
) -> None:
    with pytest.raises(StartupError) as caught:
        _load(tmp_path, monkeypatch, "clash", code)
    for part in expected:
        assert part in str(caught.value)


def test_job_handlers_carry_their_payload_model() -> None:
    from pydantic import BaseModel

    class Report(BaseModel):
        report_id: str

    async def generate(event: Event, ctx: Context) -> None: ...

    handler(job="generate-report", payload=Report)(generate)
    registry = Registry(identities(list(generate.__hookline_handlers__)))  # type: ignore[attr-defined]
    spec = registry.job("generate-report")
    assert spec is not None and spec.payload is Report and spec.job == "generate-report"
    assert registry.job("other") is None and [s.job for s in registry.jobs] == ["generate-report"]
    with pytest.raises(PipelineError, match="payload="):
        handler("stripe", "x", payload=Report)
    with pytest.raises(PipelineError, match="payload="):
        handler(job="x", payload=dict)  # type: ignore[arg-type]
    with pytest.raises(PipelineError, match="job name"):
        handler(job="has/slash")
    with pytest.raises(PipelineError, match="name="):
        handler("stripe", name=" ")
