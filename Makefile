# SpeakerAuth: `make run` serves the app locally (SQLite, no database server); `make test` runs the suite.
SHELL := /bin/bash
# The venv's interpreter: pyenv's Python for .python-version (3.12) when pyenv is there, else the
# first Python 3.12+ on PATH.
PYTHON ?= $(shell for p in "$$(pyenv which python3 2>/dev/null)" python3.12 python3 python3.13; do [ -n "$$p" ] && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format bench smoke loadtest clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.12+ is required (see .python-version)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

install: $(VENV)/.installed node_modules/.package-lock.json

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py install_default_ubm
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

# Figures, not tests (DESIGN §7): (a) the engine in process, (b)-(e) HTTP against gunicorn and the
# Postgres server on 127.0.0.1:5432 (a throwaway database); writes docs/benchmarks.md.
# BENCH_ARGS=--quick for a shorter run.
bench: install
	@set -euo pipefail; engine_out=$$(mktemp); trap 'rm -f "$$engine_out"' EXIT; \
	echo "make bench: $$(nproc) CPUs ($$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"; \
	echo "== (a) engine, in process: python -m bench.engine"; \
	$(BIN)/python -m bench.engine | tee "$$engine_out"; \
	echo "== (b)-(e) HTTP, gunicorn + Postgres: python -m bench.http"; \
	$(BIN)/python -m bench.http --engine-report "$$engine_out" --write docs/benchmarks.md $(BENCH_ARGS)

# Production-mode smoke test and the load-and-fault test (restarts the local Postgres!).
smoke: install
	$(BIN)/python -m ops.smoke

loadtest: install
	$(BIN)/python -m ops.loadtest $(LOADTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules staticfiles .pytest_cache .ruff_cache
