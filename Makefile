# Autom — one entry point for setup, code generation, running and testing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV_PY := .venv/bin/python
PROTO_OUT := libs/protos/src
PROTO_FILES := $(shell find protos -name '*.proto' | sort)

.PHONY: help setup browser proto proto-check run test bench lint fmt typecheck clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## Create the environment (installs uv with pip when missing)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --user uv \
		|| $(PYTHON) -m pip install --quiet --break-system-packages uv
	@$(UV) sync --quiet --all-packages --frozen --compile-bytecode
# Bytecode made once here: where PYTHONDONTWRITEBYTECODE is set (container images often
# do), every process would otherwise compile each module it imports, at every start.
	@$(VENV_PY) -m compileall -q -j 0 libs services >/dev/null

browser: ## Install Debian's chromium for the console's browser tests (as root, when missing)
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the browser tests (apt-get)"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
				|| echo "WARNING: apt-get could not install chromium: the browser tests will be skipped"; \
		else \
			echo "WARNING: chromium is missing and cannot be installed here (needs root and apt-get):" \
				"the browser tests will be skipped; install Debian's chromium or set AUTOM_CHROMIUM"; \
		fi; }

proto: setup ## Regenerate libs/protos from protos/
	@$(VENV_PY) tools/gen_protos.py

proto-check: setup ## Fail when libs/protos is stale against protos/
	@$(VENV_PY) tools/gen_protos.py --check

run: setup ## Start the whole stack (embedded PostgreSQL + NATS unless AUTOM_DATABASE_URL / AUTOM_NATS_URL; drafter model: AUTOM_DRAFTER_MODEL, see README)
	@$(VENV_PY) -m autom.devstack.run

test: setup browser ## Run the whole suite against real PostgreSQL and NATS
	@$(VENV_PY) tools/gen_protos.py --check
	@$(VENV_PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: setup ## Run the benchmarks and print JSON figures
	@$(VENV_PY) -m bench

lint: setup ## ruff + mypy
	@$(VENV_PY) -m ruff check .
	@$(VENV_PY) -m ruff format --check .
	@$(VENV_PY) -m mypy libs/core/src libs/schedule/src libs/templating/src libs/devstack/src libs/cli/src services/*/src

fmt: setup ## Format the code
	@$(VENV_PY) -m ruff format .
	@$(VENV_PY) -m ruff check --fix .

clean: ## Remove the environment and local data
	rm -rf .venv .autom
