# The project's commands. `make demo` runs the platform locally; `make test` is what CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := $(CURDIR)/.demo

# The embedded default: SQLite for Airflow and the platform, folders for the bucket and the lake.
demo airflow up demo-env: export AIRFLOW_HOME := $(DEMO)/airflow
demo airflow up demo-env: export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
demo airflow up demo-env: export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
demo airflow up demo-env: export AIRFLOW__CORE__LOAD_EXAMPLES := False
demo airflow up demo-env: export AIRFLOW__CORE__PARALLELISM := 4
demo airflow up demo-env: export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS := admin:admin
demo airflow up demo-env: export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE := $(DEMO)/airflow/passwords.json
demo airflow up demo-env: export PYTHONPATH := $(CURDIR)
demo airflow up demo-env: export AIRFLOW_CONN_PLATFORM_DB := {"conn_type": "sqlite", "host": "$(DEMO)/platform.db"}
demo airflow up demo-env: export AIRFLOW_CONN_PLATFORM_LAKE := {"conn_type": "fs", "extra": {"path": "$(DEMO)/lake"}}
demo airflow up demo-env: export AIRFLOW_CONN_CHURN_SOURCE_DB := {"conn_type": "sqlite", "host": "$(DEMO)/source.db"}
demo airflow up demo-env: export AIRFLOW_CONN_CHURN_SOURCE_FILES := {"conn_type": "fs", "extra": {"path": "$(DEMO)/bucket"}}

.PHONY: venv demo test test-e2e test-reliability reliability bench lint airflow up demo-env clean

$(BIN)/activate: requirements.txt requirements-dev.txt constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(BIN)/activate

venv: $(BIN)/activate

demo: venv ## Seed the demo sources and run every pipeline stage through Airflow.
	$(BIN)/python -m include.demo.run

airflow: venv ## The Airflow CLI in the demo's environment: make airflow ARGS='dags list'
	$(BIN)/airflow $(ARGS)

up: venv ## Airflow (UI, scheduler, ...) on the demo's environment.
	$(BIN)/python -m include.demo.run --serve

demo-env: ## Print the demo's environment, for `eval "$(make -s demo-env)"`.
	@env | grep -E '^(AIRFLOW|PYTHONPATH)' | sed "s/^\([^=]*\)=\(.*\)$$/export \1='\2'/"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint ## Lint and the whole test suite.
	$(BIN)/pytest

test-e2e: venv ## End-to-end: a real Airflow on PostgreSQL and on SQLite, driven by REST and headless Chromium.
	$(BIN)/pytest -m e2e tests/e2e

reliability: venv ## The reliability suite at the README's counts (KILLS=100 RACES=50 BACKFILL_DAYS=30): table + .bench/reliability.json.
	$(BIN)/python -m include.reliability --kills $(or $(KILLS),100) --races $(or $(RACES),50) --backfill-days $(or $(BACKFILL_DAYS),30)

test-reliability: venv ## The reliability suite with CI's smaller counts (what .ci/run calls).
	$(BIN)/python -m include.reliability --kills 20 --races 10 --backfill-days 5 --out .bench/reliability-ci.json

bench: venv ## Scoring and ingest against naive pandas and the raw limits on N rows (default 1 M) in PostgreSQL.
	$(BIN)/python -m include.bench --rows $(or $(N),1000000) $(if $(PG_URL),--pg-url '$(PG_URL)')

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
