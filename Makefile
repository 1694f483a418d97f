# optsync front door: `make help` lists every task.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the tasks
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# (Re)create the virtualenv and install the project when it is missing or pyproject changed.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install optsync with its dev tools

.PHONY: test
test: $(STAMP) ## run the whole test suite (PostgreSQL too when OPTSYNC_TEST_POSTGRES_URL is set)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check optsync tests bench
	$(BIN)/ruff format --check optsync tests bench
	$(BIN)/mypy

.PHONY: proto
proto: $(STAMP) ## regenerate the committed Pub/Sub API stubs from optsync/pubsub_api/pubsub_api.proto
	$(BIN)/python -m optsync.pubsub_api.generate

.PHONY: format
format: $(STAMP) ## format the code with ruff
	$(BIN)/ruff format optsync tests bench
	$(BIN)/ruff check --fix optsync tests bench

.PHONY: demo
demo: $(STAMP) ## start the emulator, store, web app and worker in one process
	$(BIN)/optsync demo

.PHONY: tour
tour: $(STAMP) ## follow README's tour against a fresh demo in Chromium; rewrites docs/screenshots
	$(BIN)/python -m tests.browser.tour

.PHONY: bench
bench: $(STAMP) ## run every bench/ script and write docs/benchmarks.md (PostgreSQL too if OPTSYNC_TEST_POSTGRES_URL is set)
	$(BIN)/python bench/report.py

.PHONY: clean
clean: ## remove the virtualenv and caches (keeps .optsync data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

.PHONY: soak
soak: $(STAMP) ## the long fault/load soak (30 min; OPTSYNC_SOAK_SECONDS, OPTSYNC_SOAK_FAULT=drop-one-batch)
	rm -f test-artifacts/soak-summary-*.json
	OPTSYNC_SOAK_SECONDS=$${OPTSYNC_SOAK_SECONDS:-1800} $(BIN)/pytest tests/soak -s -p no:cacheprovider --timeout 0
	@if [ -f test-artifacts/soak-summary-postgresql.json ]; then \
		cp test-artifacts/soak-summary-postgresql.json docs/soak-summary.json; \
		echo "summary copied to docs/soak-summary.json (make bench puts it in docs/benchmarks.md)"; fi
