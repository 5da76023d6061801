# MasterTrade developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools/bin
CHECKOV_VENV := .tools/checkov
CHART := charts/mastertrade

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

.PHONY: system-packages
system-packages: ## Install missing Debian packages (npm, PostgreSQL, RabbitMQ, Redis, promtool, shellcheck, etcd, jq)
	@bash scripts/install-system-packages.sh

.PHONY: setup
setup: system-packages $(BIN)/python tools ## Everything set up: Debian packages, .venv, helm/kubectl
	$(BIN)/pip install --quiet -e '.[dev,operator]'

.PHONY: tools
tools: ## Install the real helm and kubectl binaries into .tools/bin
	@bash scripts/install-k8s-tools.sh $(TOOLS)

.PHONY: checkov
checkov: ## Install checkov into its own environment (.tools/checkov), for the security scan
	@test -x $(CHECKOV_VENV)/bin/checkov || { $(PYTHON) -m venv $(CHECKOV_VENV) && \
		$(CHECKOV_VENV)/bin/pip install --quiet checkov; }

.PHONY: generate
generate: ## Rewrite every generated file (values.schema.json, definitions.json)
	$(BIN)/python -m mastertrade_operator.generate

.PHONY: lint
lint: ## ruff, mypy, import contracts (lint-imports) and helm lint --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(TOOLS)/helm lint --strict $(CHART)

.PHONY: test
test: setup checkov ## Set everything up, then run every tier of tests
	bash scripts/ensure-infra.sh
	$(BIN)/python -m pytest -m ""

.PHONY: up
up: setup ## Set up, then run the whole stack as local processes (Ctrl-C stops it)
	bash scripts/ensure-infra.sh
	$(BIN)/mastertrade up

.PHONY: render
render: ## Print the chart rendered with the defaults (pass VALUES=file for a profile)
	@$(TOOLS)/helm template mastertrade $(CHART) $(if $(VALUES),--values $(VALUES))

.PHONY: bench
bench: setup ## Run the benchmarks in bench/ and print their figures
	$(BIN)/python bench/chart_render.py
	$(BIN)/python bench/operator_render.py
	$(BIN)/python bench/operator_reconcile.py
	bash scripts/ensure-infra.sh
	$(BIN)/python bench/services.py
	$(BIN)/python bench/market_data_ingest.py
	$(BIN)/python bench/data_api.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/metrics_scrape.py
	$(BIN)/python bench/ui.py
	$(BIN)/python bench/signal_to_fill.py
	$(BIN)/python bench/trading_indexes.py
	$(BIN)/python bench/backtest.py
	$(BIN)/python bench/strategy_generation.py
	$(BIN)/python bench/operator_real_api.py

.PHONY: kind-up
kind-up: ## MasterTrade on a local kind cluster: create, build, load, install, wait, print URLs (MODE=operator|chart)
	MODE="$(or $(MODE),auto)" bash scripts/kind-up.sh

.PHONY: kind-down
kind-down: ## Delete the kind cluster that kind-up created
	bash scripts/kind-down.sh
