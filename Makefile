# One-command set-up: `make demo` runs the whole job on embedded defaults, `make test` runs the tests.
# Both create .venv and install the pinned lock when it is missing or the lock changed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL := .local
API_PORT ?= 8000
DEMO_SEED ?= 7
DEMO_PROFILE ?= demo
DEMO_DAYS ?= 2017-04-01:2017-04-03
DEMO_WEEK_ENDING ?= 2017-04-02
AIRFLOW_PORT ?= 8080
PROM_DIR := $(LOCAL)/prometheus
export AIRFLOW_HOME ?= $(CURDIR)/$(LOCAL)/airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER ?= $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export AIRFLOW__CORE__PARALLELISM ?= 4
# make airflow: the scheduler may run only the days the embedded lake holds (unpausing never runs today's
# interval); CHURN_SCHEDULE_END set empty opens the window, or set it to another lake's last day.
DEMO_LAST_DAY := $(lastword $(subst :, ,$(DEMO_DAYS)))

# The scores database of the embedded mode: the caller's CHURN_DATABASE_URL, else a project-local
# PostgreSQL cluster (SQLite with a notice where no PostgreSQL binaries exist). Expanded only by recipes.
DB_URL = $${CHURN_DATABASE_URL:-$$($(BIN)/churn db local-start)}
# The API keys of the local API: the caller's CHURN_API_KEYS, else a key generated once into .local/api-key
# (kept across reruns). Expanded only by recipes.
API_KEY_FILE := $(LOCAL)/api-key
API_KEYS = $${CHURN_API_KEYS:-$$(mkdir -p $(LOCAL); test -s $(API_KEY_FILE) || (umask 077; \
  $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(32))" > $(API_KEY_FILE)); cat $(API_KEY_FILE))}

# $(call dag_run,DAG_ID,ARGS): one run of the DAG through the real scheduler (unpaused, triggered through the
# REST API as the UI's trigger does, waited for); a failed run prints its failed tasks' logs and fails the recipe.
define dag_run
$(BIN)/churn airflow run $(1) $(2) --port $(AIRFLOW_PORT)
endef

.PHONY: help setup lock lint format test demo api api-start api-stop mlflow-ui airflow airflow-stop bench bench-full clean distclean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if command -v uv >/dev/null; then UV=uv; \
	 elif $(BIN)/python -m pip install -q uv >/dev/null 2>&1; then UV=$(BIN)/uv; \
	 else UV=; fi; \
	 if [ -n "$$UV" ]; then \
	   echo "installing the lock with uv"; \
	   $$UV pip sync --python $(BIN)/python requirements.txt requirements-dev.txt && \
	   $$UV pip install --python $(BIN)/python --no-deps -e . && \
	   $$UV pip check --python $(BIN)/python; \
	 else \
	   echo "installing the lock with pip (uv not available)"; \
	   $(BIN)/python -m pip install -q --upgrade pip && \
	   $(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt && \
	   $(BIN)/python -m pip install -q --no-deps -e . && \
	   $(BIN)/python -m pip check; \
	 fi
	@touch $@

# The browser files the Data Docs pages load from CDNs, pinned in web/package-lock.json (npm registry): served
# by the Airflow plugin so the pages render offline. Without npm the pages keep their CDN links.
WEB_STAMP := web/node_modules/.installed
$(WEB_STAMP): web/package.json web/package-lock.json
	@if command -v npm >/dev/null; then echo "installing web/ assets with npm ci"; \
	   (cd web && npm ci --silent) && touch $@; \
	 else echo "npm not found: Data Docs pages will load their CDN files (install Node.js for offline pages)"; fi

setup: $(STAMP) $(WEB_STAMP)  ## Create .venv, install the pinned Python dependencies and web assets (only when needed)

lock: $(STAMP)  ## Regenerate requirements.txt from requirements.in (uv from the venv's lock)
	$(BIN)/uv pip compile requirements.in -o requirements.txt --python-version 3.11

lint: $(STAMP)  ## ruff check, format check and mypy (churn/ and api/, every function typed)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Three pytest processes side by side on the two cores: the browser suite (tests/browser: `make demo` through
# the real scheduler, then headless chromium) and the DAG tests (tests/dags: Airflow runs) mostly wait on
# Airflow's processes, the rest is CPU-bound. Their logs follow the main suite's output.
SIDE_SUITES := browser dags
test: $(STAMP) $(WEB_STAMP)  ## Run the test suite (PostgreSQL tests use CHURN_TEST_DATABASE_URL, default 127.0.0.1:5432/test)
	@mkdir -p test-artifacts
	@pids=""; for suite in $(SIDE_SUITES); do \
	   $(BIN)/pytest -p no:cacheprovider tests/$$suite >test-artifacts/pytest-$$suite.log 2>&1 & pids="$$pids $$!"; \
	 done; \
	 status=0; $(BIN)/pytest $(foreach suite,$(SIDE_SUITES),--ignore=tests/$(suite)) || status=$$?; \
	 for pid in $$pids; do wait $$pid || status=$$?; done; \
	 for suite in $(SIDE_SUITES); do echo "== tests/$$suite (test-artifacts/pytest-$$suite.log)"; \
	   cat test-artifacts/pytest-$$suite.log; done; \
	 echo "browser screenshots: test-artifacts/browser/"; exit $$status

demo: $(STAMP) $(WEB_STAMP)  ## Run the whole job on embedded defaults through Airflow's scheduler; leave Airflow and the API up
	@mkdir -p $(LOCAL) $(AIRFLOW_HOME)
	@url="$(DB_URL)"; export CHURN_DATABASE_URL="$$url"; \
	 export CHURN_SCHEDULE_END="$${CHURN_SCHEDULE_END-$(DEMO_LAST_DAY)}"; \
	 export CHURN_TASK_RETRIES="$${CHURN_TASK_RETRIES-1}" CHURN_TASK_RETRY_DELAY_SECONDS="$${CHURN_TASK_RETRY_DELAY_SECONDS-10}"; \
	 echo "== scores database: $$url"; \
	 $(BIN)/churn db upgrade; \
	 echo "== generate the Kaggle-format history dump ($(DEMO_PROFILE) profile, up to 2017-03-31)"; \
	 $(BIN)/churn synth --profile $(DEMO_PROFILE) --seed $(DEMO_SEED); \
	 echo "== Airflow: api-server, scheduler, dag-processor, triggerer (LocalExecutor; runs up to $$CHURN_SCHEDULE_END)"; \
	 $(BIN)/churn airflow local-stop --home $(AIRFLOW_HOME) --grace 15 >/dev/null; \
	 $(BIN)/churn airflow local-start --home $(AIRFLOW_HOME) --port $(AIRFLOW_PORT); \
	 echo "== churn_ingest for 2017-03-31: dump -> Silver, validated"; \
	 $(call dag_run,churn_ingest,--day 2017-03-31); \
	 echo "== churn_training: train on 2016-08..2017-01 (labels knowable on 2017-02-28), validate on 2017-03, register (MLflow in .local/mlflow)"; \
	 $(call dag_run,churn_training,--conf '{"cohort": "2017-03"}'); \
	 $(BIN)/churn model list; \
	 first=$(firstword $(subst :, ,$(DEMO_DAYS))); last=$(lastword $(subst :, ,$(DEMO_DAYS))); day=$$first; \
	 while [ "$$day" \< "$$last" ] || [ "$$day" = "$$last" ]; do \
	   echo "== day $$day: daily drop, churn_ingest, then churn_nightly_scoring"; \
	   $(BIN)/churn synth --profile $(DEMO_PROFILE) --seed $(DEMO_SEED) --daily $$day:$$day; \
	   $(call dag_run,churn_ingest,--day $$day); \
	   $(call dag_run,churn_nightly_scoring,--day $$day); \
	   day=$$(date -u -d "$$day + 1 day" +%F); \
	 done; \
	 echo "== published score runs"; \
	 $(BIN)/python -c "from churn.db import engine_from_settings; from churn.settings import get_settings; \
	   from sqlalchemy import text; e = engine_from_settings(get_settings()); c = e.connect(); \
	   [print('  ', *r) for r in c.execute(text('SELECT score_date, status, rows_scored, model_version, airflow_dag_id FROM score_runs ORDER BY score_date, started_at'))]"; \
	 echo "== churn_weekly_drift for the week ending $(DEMO_WEEK_ENDING): Evidently report vs the champion's reference"; \
	 $(call dag_run,churn_weekly_drift,--day $(DEMO_WEEK_ENDING)); \
	 base=http://127.0.0.1:$(AIRFLOW_PORT); \
	 echo "== Airflow stays up at $$base (login admin / $$($(BIN)/python -c "from churn.localairflow import password; \
	   from pathlib import Path; print(password(Path('$(AIRFLOW_HOME)')))"); stop with make airflow-stop):"; \
	 echo "   run history and task logs: $$base/dags/churn_nightly_scoring/runs (each run's tasks open their logs)"; \
	 echo "   asset events (churn_scores, per publish): $$base/assets"; \
	 echo "   reports (Browse > Churn reports): $$base/churn-reports/"; \
	 echo "   the same through the REST API: churn airflow history --port $(AIRFLOW_PORT)"; \
	 $(MAKE) --no-print-directory api-start CHURN_DATABASE_URL="$$url"

api-start: $(STAMP)
	@$(MAKE) --no-print-directory api-stop >/dev/null
	@rm -rf $(PROM_DIR) && mkdir -p $(PROM_DIR)
	@keys="$(API_KEYS)"; key="$${keys%%,*}"; base=http://127.0.0.1:$(API_PORT); \
	 CHURN_API_KEYS="$$keys" PROMETHEUS_MULTIPROC_DIR=$(PROM_DIR) nohup $(BIN)/python -m api.serve --host 127.0.0.1 \
	   --port $(API_PORT) --workers 2 >$(LOCAL)/api.log 2>&1 & echo $$! > $(LOCAL)/api.pid; \
	 for i in $$(seq 1 60); do \
	   curl -fsS $$base/readyz >/dev/null 2>&1 && break; sleep 0.5; \
	   if [ $$i = 60 ]; then echo "API did not become ready; see $(LOCAL)/api.log"; exit 1; fi; done; \
	 echo "== API answering on $$base (log $(LOCAL)/api.log, stop with make api-stop)"; \
	 echo "   API key (X-API-Key): $$key   (CHURN_API_KEYS, else the key kept in $(API_KEY_FILE))"; \
	 echo "   key=$$key"; \
	 echo "   curl -s $$base/readyz"; \
	 echo "   curl -s -H \"X-API-Key: \$$key\" '$$base/scores?limit=3'"; \
	 echo "   curl -s -H \"X-API-Key: \$$key\" $$base/scores/<msno, / as %2F>      (and .../history)"; \
	 echo "   curl -s -H \"X-API-Key: \$$key\" '$$base/scores?format=csv' > scores.csv"; \
	 echo "   curl -s -X POST $$base/predict -H \"X-API-Key: \$$key\" -H 'content-type: application/json' -d '{\"msno\": \"<msno>\"}'"; \
	 echo "   curl -s -H \"X-API-Key: \$$key\" $$base/models/champion ; curl -s $$base/metrics"; \
	 echo "   curl -s -H \"X-API-Key: \$$key\" $$base/monitoring/drift/latest ; curl -s -H \"X-API-Key: \$$key\" $$base/monitoring/performance"; \
	 echo "   OpenAPI docs: $$base/docs"; \
	 echo "   retention page (sign in with the key): $$base/retention/"; \
	 curl -fsS $$base/readyz; echo; \
	 curl -fsS -H "X-API-Key: $$key" "$$base/scores?limit=2"; echo

api: $(STAMP)  ## Serve the API in the foreground (2 uvicorn workers, a SO_REUSEPORT socket each; key as in api-start)
	@rm -rf $(PROM_DIR) && mkdir -p $(PROM_DIR)
	@url="$(DB_URL)"; keys="$(API_KEYS)"; echo "API key (X-API-Key): $${keys%%,*}"; \
	 CHURN_DATABASE_URL="$$url" CHURN_API_KEYS="$$keys" PROMETHEUS_MULTIPROC_DIR=$(PROM_DIR) \
	 $(BIN)/python -m api.serve --host 127.0.0.1 --port $(API_PORT) --workers 2

api-stop:  ## Stop the API that make demo left running (waits until its port is free)
	@if [ -f $(LOCAL)/api.pid ]; then pid=$$(cat $(LOCAL)/api.pid); kill $$pid 2>/dev/null || true; \
	   for i in $$(seq 1 100); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	   rm -f $(LOCAL)/api.pid; fi

mlflow-ui: $(STAMP)  ## Browse the local MLflow store (runs, plots, registered models) on port 5000
	$(BIN)/mlflow ui --backend-store-uri $${CHURN_MLFLOW_TRACKING_URI:-sqlite:///$(LOCAL)/mlflow/mlflow.db} --port 5000

airflow: $(STAMP) $(WEB_STAMP)  ## Start Airflow's components (LocalExecutor, metadata in the local PostgreSQL); print URL and login
	@mkdir -p $(AIRFLOW_HOME)
	@url="$(DB_URL)"; CHURN_DATABASE_URL="$$url" CHURN_SCHEDULE_END="$${CHURN_SCHEDULE_END-$(DEMO_LAST_DAY)}" \
	  $(BIN)/churn airflow local-start --home $(AIRFLOW_HOME) --port $(AIRFLOW_PORT)
	@echo "   stop with make airflow-stop; logs in $(AIRFLOW_HOME)/logs"

airflow-stop:  ## Stop every local Airflow component (SIGTERM, SIGKILL after 30 s)
	@test ! -x $(BIN)/churn || $(BIN)/churn airflow local-stop --home $(AIRFLOW_HOME)

bench: $(STAMP)  ## Run the benchmarks in bench/ (ratios against references; each module's docstring says what it measures)
	$(BIN)/python -m bench

bench-full: $(STAMP)  ## Every stage at the real size, timed (BENCH_FULL_ARGS="--users 200000": quick variant)
	$(BIN)/python -m bench.full_scale $(BENCH_FULL_ARGS)

clean:  ## Remove generated data, local services' state and caches (keeps .venv)
	@$(MAKE) --no-print-directory api-stop
	@$(MAKE) --no-print-directory airflow-stop >/dev/null 2>&1 || true
	@test ! -x $(BIN)/churn || $(BIN)/churn db local-stop >/dev/null 2>&1 || true
	rm -rf $(LOCAL) data bench/data bench/results test-artifacts .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean  ## clean, and remove .venv
	rm -rf $(VENV)
