# agentserver — one command per task. `make run` and `make test` bootstrap everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv from PATH, else a private copy installed with pip into .tools/ (no system changes).
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
# Two hashed locks from one `make lock`: what running needs (incl. the embedded model), and that plus the
# dev/test tools. `make run` installs only the first; `make test`/`make lint` the second.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
COMPILE := $(UV) pip compile pyproject.toml --generate-hashes --override overrides.txt --python-version 3.11 --quiet
PYTEST_ARGS ?=

.PHONY: help install install-dev lock run test test-fast lint format typecheck bench eval db-upgrade db-downgrade model-pull services chromium clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

# A venv that already holds the up-to-date dev set holds the runtime set too: keep it (no tool uninstalls).
$(STAMP): $(LOCK) pyproject.toml | $(UV)
	@test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	@if [ -f $(DEV_STAMP) ] && [ $(DEV_STAMP) -nt $(DEV_LOCK) ] && [ $(DEV_STAMP) -nt pyproject.toml ]; then \
		echo "$(VENV) already has the dev set (a superset of $(LOCK))"; \
	else \
		rm -f $(DEV_STAMP) && $(UV) pip sync --python $(BIN)/python $(LOCK) && \
		$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .; \
	fi
	@touch $@

$(DEV_STAMP): $(DEV_LOCK) pyproject.toml | $(UV)
	@test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip sync --python $(BIN)/python $(DEV_LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@ $(STAMP)

install: $(STAMP) ## create .venv with what running needs (requirements.lock) and install the project

install-dev: $(DEV_STAMP) ## the runtime set plus the dev and test tools (requirements-dev.lock)

lock: | $(UV) ## re-resolve both hashed locks from pyproject.toml (no index URLs); the only way to change them
	$(COMPILE) --extra local -o $(LOCK)
	$(COMPILE) --extra local --extra dev -c $(LOCK) -o $(DEV_LOCK)

run: install ## serve the API and web UI on http://127.0.0.1:8000 (embedded DB unless DATABASE_URL)
	@if [ -n "$$DATABASE_URL" ]; then $(BIN)/agentserver db upgrade; fi
	$(BIN)/agentserver model pull
	exec $(BIN)/agentserver serve

services: ## start Redis for the tests if it is not running
	@scripts/ensure-redis.sh

chromium: ## make sure Debian's chromium is there for the browser tests (tests/browser; apt-get once, then a no-op)
	@scripts/ensure-chromium.sh

test: install-dev services chromium ## run the whole test suite against real PostgreSQL and Redis
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install-dev chromium ## the suite without the real-LLM tests
	$(BIN)/pytest -m "not llm" $(PYTEST_ARGS)

lint: install-dev ## ruff + mypy --strict
	$(BIN)/ruff check src tests bench evals
	$(BIN)/ruff format --check src tests bench evals
	$(BIN)/mypy src tests evals

typecheck: install-dev
	$(BIN)/mypy src tests evals

format: install-dev ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests bench evals
	$(BIN)/ruff format src tests bench evals

# `make bench` is the turn-cost suite (issue 14, ~10 min); BENCH="turns chat_load ..." or BENCH=all picks others.
BENCH ?= turns
bench: install-dev ## measure what a turn costs (bench/results/turns.md); BENCH=all for every benchmark
	$(BIN)/python -m bench $(if $(filter all,$(BENCH)),,$(BENCH))

eval: install ## measure the agent (tools, memory, language, speed) on a server; writes evals/results/<model>.md
	$(BIN)/agentserver model pull $(LOCAL_MODEL)
	$(BIN)/python -m evals --serve $(EVAL_ARGS)

db-upgrade: install ## apply migrations (DATABASE_URL, or the embedded database)
	$(BIN)/agentserver db upgrade

db-downgrade: install ## revert the last migration
	$(BIN)/agentserver db downgrade

model-pull: install ## assemble and verify the embedded model file (idempotent)
	$(BIN)/agentserver model pull

clean: ## remove the virtualenv and caches (keeps .data)
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
