# One entry point for people and CI alike.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= hookline.toml

.PHONY: run test lint typecheck fmt bench clean install install-dev browser nextjs image-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# app/ and providers/ install as the package `hookline`. The strict editable mode links
# each file under build/, so mypy sees the package by its name too; a new module needs
# `make install` (every target here runs it).
EDITABLE := --config-settings editable_mode=strict

install: $(BIN)/python
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e . $(EDITABLE)

install-dev: $(BIN)/python
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[dev]' $(EDITABLE)

# Creates .venv, installs, and serves on :8400 (serve migrates the database itself).
# With no hookline.toml yet, it is made from the demo config first (never overwritten),
# so every `hookline ...` command in another shell finds the same config.
run: install
	@test -e $(CONFIG) || { cp hookline.example.toml $(CONFIG) && \
	  echo "created $(CONFIG) from hookline.example.toml (demo secrets: not for production)"; }
	$(BIN)/hookline serve --config $(CONFIG)

# Debian's Chromium for the dashboard tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "warning: could not install chromium"; }

# examples/nextjs: `npm ci` when package-lock.json changed since the last install here,
# `next build` + `tsc --noEmit` when a source changed since the last build (a clean clone:
# all three). Without node/npm it is skipped, except under CI=true, where that is an error.
nextjs:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  node examples/nextjs/scripts/prepare.mjs; \
	elif [ "$$CI" = "true" ]; then \
	  echo "error: node and npm are required to build and test examples/nextjs (CI=true)" >&2; exit 1; \
	else \
	  echo "warning: node/npm not found: examples/nextjs is not built, its tests are skipped"; \
	fi

lint: install-dev
	$(BIN)/ruff check app providers tests bench examples scripts
	$(BIN)/ruff format --check app providers tests bench examples scripts

typecheck: install-dev
	$(BIN)/mypy

# Two test processes: most of the suite's time is spent waiting on the servers it starts.
# A test file stays on one process (--dist loadfile), with its module-scoped servers.
test: install-dev browser nextjs lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile

fmt: install-dev
	$(BIN)/ruff format app providers tests bench examples scripts
	$(BIN)/ruff check --fix app providers tests bench examples scripts

# Builds the container image from a locally made Debian base and runs it read-only with a
# data volume (scripts/image_test.py). Needs root, podman, runc, debootstrap; not in `test`.
image-test: install-dev
	$(BIN)/python scripts/image_test.py

bench: install-dev
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info hookline.db*
	rm -rf examples/nextjs/node_modules examples/nextjs/.next
