# Daon: the two commands are `make demo` and `make test`; each bootstraps .venv from pyproject.toml.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck bench clean system-deps help

help:
	@echo "make demo   run the whole service on embedded defaults"
	@echo "make test   run all tests"
	@echo "make lint   ruff + mypy"
	@echo "make bench  run the benchmarks in bench/"

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "Python 3.11 or newer is required (python3 --version)"; exit 1; fi
	@echo "bootstrapping $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# System programs the project uses: dbus-daemon (virtual BlueZ), Mosquitto (broker), Chromium
# (browser tests). Installed with apt when we may; otherwise the script says what is missing
# and the tests that need it are skipped with that reason.
system-deps:
	@bash scripts/system-deps.sh

demo: $(STAMP) system-deps
	$(BIN)/daon demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n auto --dist loadgroup -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
