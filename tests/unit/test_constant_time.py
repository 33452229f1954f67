"""Every secret is compared in constant time (``hmac.compare_digest``).

Two kinds of proof: a scan of the source that finds no ``==``/``!=``/``in`` on a value whose
name says it is a secret, and calls of every comparing function that count their calls of
``hmac.compare_digest``. Session ids are not compared at all: the store looks up the
SHA-256 of the id (``hookline.web.session.id_hash``), so a lookup's timing says nothing of
the id.
"""

from __future__ import annotations

import ast
import hmac
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hookline.providers import GitHubProvider, SlackProvider, StandardProvider, StripeProvider
from hookline.providers.base import VerificationError
from hookline.web.auth import token_matches
from hookline.web.jobs import api_key_matches
from hookline.web.session import Session, Sessions
from tests.support.server import ROOT

SECRET_NAME = re.compile(
    r"(^|_)(token|tokens|secret|secrets|signature|signatures|csrf|sid|digest|digests|"
    r"password|keys|api_key|presented)$"
)
# (file, function): comparisons that run once at start on configuration, never on a request
ALLOWED = {("app/config.py", "_admin_token_is_no_api_key")}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _name(node.value)
    return None


def _secret_named(node: ast.expr) -> str | None:
    name = _name(node)
    if name is None or name.isupper():  # constants (MAX_SIGNATURES) hold no secret
        return None
    return name if SECRET_NAME.search(name.lower()) else None


def comparisons_of_secrets(path: Path) -> Iterator[tuple[int, str, str]]:
    tree = ast.parse(path.read_text("utf-8"))
    functions: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for child in ast.walk(node):
                functions.setdefault(id(child), node.name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
            continue
        for side in (node.left, *node.comparators):
            name = _secret_named(side)
            if name is not None:
                yield node.lineno, name, functions.get(id(node), "<module>")


def test_no_secret_is_compared_with_an_operator() -> None:
    found = []
    files = sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "providers").rglob("*.py")])
    assert len(files) > 40
    for path in files:
        relative = str(path.relative_to(ROOT))
        for line, name, function in comparisons_of_secrets(path):
            if (relative, function) not in ALLOWED:
                found.append(f"{relative}:{line} {name} in {function}()")
    assert found == [], "compare secrets with hmac.compare_digest:\n" + "\n".join(found)


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(request, token, keys, session):\n"
        "    a = request.token == token\n"
        "    b = token in keys\n"
        "    c = session.csrf != request.form['csrf']\n"
        "    d = len(keys) == MAX_KEYS\n"
    )
    assert [(line, name) for line, name, _ in comparisons_of_secrets(sample)] == [
        (2, "token"),
        (2, "token"),
        (3, "token"),
        (3, "keys"),
        (4, "csrf"),
    ]


@pytest.fixture
def digest_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    return calls


CHECKS: dict[str, Callable[[], object]] = {
    "admin token": lambda: token_matches("guess", "the-admin-token"),
    "api keys": lambda: api_key_matches("guess", ["key-one", "key-two"]),
    "csrf": lambda: Sessions.csrf_ok(Session("sid", "a" * 64), "b" * 64),
}


@pytest.mark.parametrize("what", sorted(CHECKS))
def test_secret_checks_call_compare_digest(what: str, digest_calls: list[int]) -> None:
    CHECKS[what]()
    assert digest_calls, what


PROVIDERS: dict[str, Callable[[], Any]] = {
    "stripe": lambda: StripeProvider(["whsec_x"]),
    "github": lambda: GitHubProvider(["s"]),
    "slack": lambda: SlackProvider(["s"]),
    "standard": lambda: StandardProvider(["whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="]),
}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_provider_signatures_are_compared_in_constant_time(
    name: str, digest_calls: list[int]
) -> None:
    provider = PROVIDERS[name]()
    body = b'{"id": "evt_1", "type": "t", "event_id": "Ev1", "event": {"type": "t"}}'
    now = time.time()
    headers = {k.lower(): v for k, v in provider.sign(body, now).items()}
    (name_of_signature,) = [k for k in headers if "signature" in k]
    signature = headers[name_of_signature]
    middle = len(signature) * 3 // 4  # inside the digest, whatever the encoding and prefix
    forged = (
        signature[:middle] + ("a" if signature[middle] != "a" else "b") + signature[middle + 1 :]
    )
    with pytest.raises(VerificationError):
        provider.verify(body, {**headers, name_of_signature: forged}, now)
    assert digest_calls, name
