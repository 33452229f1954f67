"""The Dockerfile and .dockerignore keep their promises between runs of ``make image-test``
(which builds and runs the image for real, but needs root and podman, so is not in
``make test``): local state never enters the build context, what the build copies does,
and the image runs as a fixed non-root user from a configurable base."""

from __future__ import annotations

import fnmatch
import re

from tests.support.server import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Docker's rule, enough for these patterns: a pattern matches the path or a parent
    directory of it; ``**/`` matches any number of directories."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in ignore_patterns():
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(
                prefix.rsplit("/", 1)[-1], pattern[3:]
            ):
                return True
    return False


def test_local_state_and_secrets_stay_out_of_the_build_context() -> None:
    for path in (
        ".venv/bin/python",
        ".git/config",
        "examples/nextjs/node_modules/next/package.json",
        "examples/nextjs/.next/build-manifest.json",
        "bench/bullmq/node_modules/bullmq/package.json",
        "hookline.toml",
        "hookline.db",
        "hookline.db-wal",
        "app/__pycache__/cli.cpython-311.pyc",
        "build/lib/hookline/cli.py",
        "hookline.egg-info/PKG-INFO",
    ):
        assert ignored(path), f"{path} would be sent to the image build"


def test_everything_the_build_copies_is_in_the_context() -> None:
    copied = re.findall(r"^COPY\s+(.+?)\s+\S+$", DOCKERFILE, re.M)
    sources = [src for line in copied for src in line.split()]
    assert {"pyproject.toml", "README.md", "app", "providers"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file"
        assert not ignored(src), f"COPY {src}, but .dockerignore leaves it out"
    assert "COPY . " not in DOCKERFILE  # the whole context (.venv, databases) never


def test_the_base_is_a_build_argument_defaulting_to_python_slim() -> None:
    arg = DOCKERFILE.index("ARG BASE=python:3.11-slim")
    assert DOCKERFILE.index("FROM ${BASE}") > arg
    assert len(re.findall(r"^FROM ", DOCKERFILE, re.M)) == 1


def test_runs_as_a_fixed_non_root_user_with_data_on_a_volume() -> None:
    users = re.findall(r"^USER\s+(\S+)$", DOCKERFILE, re.M)
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), users
    assert re.search(r"^VOLUME /var/lib/hookline$", DOCKERFILE, re.M)
    assert 'ENTRYPOINT ["hookline"]' in DOCKERFILE
    assert 'CMD ["serve", "--host", "0.0.0.0"]' in DOCKERFILE
