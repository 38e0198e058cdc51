# The project's commands. `make demo` runs the platform locally; `make test` is what CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := $(CURDIR)/.demo

# The embedded default: SQLite for Airflow and the platform, folders for the bucket and the lake.
demo airflow up demo-env serve bench-serving: export AIRFLOW_HOME := $(DEMO)/airflow
demo airflow up demo-env serve bench-serving: export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
demo airflow up demo-env serve bench-serving: export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
demo airflow up demo-env serve bench-serving: export AIRFLOW__CORE__LOAD_EXAMPLES := False
demo airflow up demo-env serve bench-serving: export AIRFLOW__CORE__PARALLELISM := 4
# A loop that queued nothing sleeps 0.2 s, not 1 s: each of a scoring day's seven tasks waits for the
# scheduler's next loop to start, and the demo's ingest backfill ran twice as fast (docs/performance.md).
demo airflow up demo-env serve bench-serving: export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME := 0.2
# A task's supervisor can miss its task's exit and see it only at its next check, up to this many
# seconds later (Airflow's default 5; docs/performance.md): one in four tasks here waited those 5 s.
demo airflow up demo-env serve bench-serving: export AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL := 1
demo airflow up demo-env serve bench-serving: export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS := admin:admin
demo airflow up demo-env serve bench-serving: export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE := $(DEMO)/airflow/passwords.json
# The platform's Airflow local settings (config/): the scheduler imports what the tasks import once,
# and every LocalExecutor task, a fork of it, starts with them loaded (include/preload.py).
demo airflow up demo-env serve bench-serving: export PYTHONPATH := $(CURDIR):$(CURDIR)/config
# The demo's sources end on 2025-03-31: unpausing a DAG must not also schedule today's interval.
demo airflow up demo-env serve bench-serving: export PLATFORM_DAG_END_DATE := 2025-03-31
# A failed task shows at once instead of after two retries.
demo airflow up demo-env serve bench-serving: export PLATFORM_TASK_RETRIES := 0
demo airflow up demo-env serve bench-serving: export PLATFORM_SENSOR_POKE_SECONDS := 5
# Every task's OpenLineage events, to a file (docs/operating.md, "Lineage"); the summary follows a day.
demo airflow up demo-env serve bench-serving: export AIRFLOW__OPENLINEAGE__TRANSPORT := {"type": "file", "log_file_path": "$(DEMO)/lineage.jsonl", "append": true}
demo airflow up demo-env serve bench-serving: export AIRFLOW__OPENLINEAGE__NAMESPACE := ml-platform-demo
# Only the tasks that report datasets send events, each from a thread of the task rather than a fork
# of it: an event costs a task about 0.3 s, and most of the demo's 430 tasks have none to report.
demo airflow up demo-env serve bench-serving: export AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD := True
demo airflow up demo-env serve bench-serving: export AIRFLOW__OPENLINEAGE__EMISSION_POLICY := [{"scope": {}, "controls": {"emit": false}}, {"scope": {"dag_id": ".*", "task_id": "ingest|plan|register|publish|ingest_outcomes|evaluate"}, "match_mode": "regex", "controls": {"emit_task_events": true}}]
demo airflow up demo-env serve bench-serving: export AIRFLOW_CONN_PLATFORM_DB := {"conn_type": "sqlite", "host": "$(DEMO)/platform.db"}
demo airflow up demo-env serve bench-serving: export AIRFLOW_CONN_PLATFORM_LAKE := {"conn_type": "fs", "extra": {"path": "$(DEMO)/lake"}}
demo airflow up demo-env serve bench-serving: export AIRFLOW_CONN_CHURN_SOURCE_DB := {"conn_type": "sqlite", "host": "$(DEMO)/source.db"}
demo airflow up demo-env serve bench-serving: export AIRFLOW_CONN_CHURN_SOURCE_FILES := {"conn_type": "fs", "extra": {"path": "$(DEMO)/bucket"}}
# The scoring service's bearer token on the demo (README, "Real-time scoring"); never a production value.
demo airflow up demo-env serve bench-serving: export AIRFLOW_CONN_PLATFORM_SERVING := {"conn_type": "http", "password": "demo-serving-token"}

.PHONY: venv demo test test-e2e test-celery test-reliability reliability bench bench-serving serve lint airflow up up-celery demo-env clean

$(BIN)/activate: requirements.txt requirements-dev.txt constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(BIN)/activate

venv: $(BIN)/activate

demo: venv ## Seed the demo sources and run every pipeline stage through Airflow.
	$(BIN)/python -m tools.demo.run

airflow: venv ## The Airflow CLI in the demo's environment: make airflow ARGS='dags list'
	$(BIN)/airflow $(ARGS)

up: venv ## Airflow (UI, scheduler, ...) on the demo's environment.
	$(BIN)/python -m tools.demo.run --serve

up-celery: venv ## Airflow on the CeleryExecutor: http://127.0.0.1:8091, admin / admin, two workers (WORKERS=N); README "Scale out".
	$(BIN)/python -m tools.scaleout $(if $(WORKERS),--workers $(WORKERS)) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY))

demo-env: ## Print the demo's environment, for `eval "$(make -s demo-env)"`.
	@env | grep -E '^(AIRFLOW|PLATFORM|PYTHONPATH)' | sed "s/^\([^=]*\)=\(.*\)$$/export \1='\2'/"

lint: venv ## Ruff, and the package layering (pyproject.toml [tool.importlinter]).
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=$(CURDIR) $(BIN)/lint-imports

test: lint ## Lint and the whole test suite, on JOBS processes (default 2; a test module stays on one).
	$(BIN)/pytest -n $(or $(JOBS),2) --dist loadfile

test-e2e: venv ## End-to-end: a real Airflow on PostgreSQL and on SQLite, driven by REST and headless Chromium.
	$(BIN)/pytest -m 'e2e and not celery' tests/e2e

test-celery: venv ## End-to-end on the CeleryExecutor: two workers, training trials and scoring shards on both, a worker killed.
	$(BIN)/pytest -m celery tests/e2e/test_celery.py

reliability: venv ## The reliability suite at the README's counts (KILLS=100 RACES=50 BACKFILL_DAYS=30): table + .bench/reliability.json.
	$(BIN)/python -m tools.reliability --kills $(or $(KILLS),100) --races $(or $(RACES),50) --backfill-days $(or $(BACKFILL_DAYS),30)

test-reliability: venv ## The reliability suite with CI's smaller counts (what .ci/run calls); its corpus and faults sections run under pytest (tests/reliability, test_faults.py, test_scheduler_kill.py).
	$(BIN)/python -m tools.reliability --kills 20 --races 10 --backfill-days 5 --only kills,races,backfill,secrets --out .bench/reliability-ci.json

bench: venv ## Scoring and ingest against naive pandas and the raw limits on N rows (default 1 M) in PostgreSQL (each path REPEATS times, default 3, the median kept), sharded scoring also on 1 and 2 Celery workers; STAGE=ingest for one stage; STAGE=train: the default search on 50 k, 200 k and 1 M-row windows (no database); USE_CASE=hotel_rates (regression) or hpc_jobs (multiclass): a worked example's scoring and training instead of churn's.
	$(BIN)/pytest -q -m bench tests/integration/test_bench.py
	$(BIN)/python -m tools.bench --rows $(or $(N),1000000) $(if $(USE_CASE),--use-case $(USE_CASE)) $(if $(REPEATS),--repeats $(REPEATS)) $(if $(PG_URL),--pg-url '$(PG_URL)') $(foreach s,$(STAGE),--stage $(s)) --celery-workers $(or $(CELERY_WORKERS),1 2)

serve: venv ## The real-time scoring service on the demo: http://127.0.0.1:8000 (PORT=..., WORKERS=...), token demo-serving-token.
	$(BIN)/python -m include.serving --port $(or $(PORT),8000) $(if $(WORKERS),--workers $(WORKERS))

bench-serving: venv ## Latency and rows/s of the scoring service (1 and 100 rows, 1/8/32 clients) on the demo's champion.
	$(BIN)/python -m tools.bench.serving $(if $(DURATION),--seconds $(DURATION)) $(if $(WORKERS),--workers $(WORKERS))

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
