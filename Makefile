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

# $(call dag_test,DAG_ID,LOGICAL_DATE,LOG_NAME [extra args]): one `airflow dags test` run, its log in
# .local/demo-<name>.log, failing the recipe (with the log's tail) when the run does not succeed.
define dag_test
$(BIN)/airflow dags test $(1) $(2) $(wordlist 2,99,$(3)) >$(LOCAL)/demo-$(firstword $(3)).log 2>&1 \
  && grep -q "state=success" $(LOCAL)/demo-$(firstword $(3)).log \
  && echo "   $(1): success" \
  || { echo "   $(1) failed; see $(LOCAL)/demo-$(firstword $(3)).log"; tail -30 $(LOCAL)/demo-$(firstword $(3)).log; exit 1; }
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

setup: $(STAMP)  ## Create .venv and install the pinned dependencies (only when needed)

lock: $(STAMP)  ## Regenerate requirements.txt from requirements.in (uv from the venv's lock)
	$(BIN)/uv pip compile requirements.in -o requirements.txt --python-version 3.11

lint: $(STAMP)  ## ruff check, format check and mypy (churn/ and api/, every function typed)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP)  ## Run the test suite (PostgreSQL tests use CHURN_TEST_DATABASE_URL, default 127.0.0.1:5432/test)
	$(BIN)/pytest

demo: $(STAMP)  ## Run the whole job on embedded defaults, through Airflow, and leave the API answering
	@mkdir -p $(LOCAL) $(AIRFLOW_HOME)
	@url="$(DB_URL)"; export CHURN_DATABASE_URL="$$url"; \
	 echo "== scores database: $$url"; \
	 $(BIN)/churn db upgrade; \
	 echo "== Airflow metadata in $(AIRFLOW_HOME) (SQLite); DAG runs log to $(LOCAL)/demo-*.log"; \
	 $(BIN)/airflow db migrate >$(LOCAL)/demo-airflow-db.log 2>&1; \
	 echo "== generate the Kaggle-format history dump (demo profile, up to 2017-03-31)"; \
	 $(BIN)/churn synth --profile demo --seed $(DEMO_SEED); \
	 echo "== Airflow churn_ingest for 2017-03-31: dump -> Silver, validated"; \
	 $(call dag_test,churn_ingest,2017-04-01T01:00:00+00:00,ingest-2017-03-31); \
	 echo "== Airflow churn_training: train on 2016-09..2017-02, validate on 2017-03, register (MLflow in .local/mlflow)"; \
	 $(call dag_test,churn_training,,training -c '{"cohort": "2017-03"}'); \
	 $(BIN)/churn model list; \
	 first=$(firstword $(subst :, ,$(DEMO_DAYS))); last=$(lastword $(subst :, ,$(DEMO_DAYS))); day=$$first; \
	 while [ "$$day" \< "$$last" ] || [ "$$day" = "$$last" ]; do \
	   next=$$(date -u -d "$$day + 1 day" +%F); \
	   echo "== day $$day: daily drop, Airflow churn_ingest, then churn_nightly_scoring"; \
	   $(BIN)/churn synth --profile demo --seed $(DEMO_SEED) --daily $$day:$$day; \
	   $(call dag_test,churn_ingest,$${next}T01:00:00+00:00,ingest-$$day); \
	   $(call dag_test,churn_nightly_scoring,$${next}T02:00:00+00:00,scoring-$$day); \
	   day=$$next; \
	 done; \
	 echo "== published score runs"; \
	 $(BIN)/python -c "from churn.db import engine_from_settings; from churn.settings import get_settings; \
	   from sqlalchemy import text; e = engine_from_settings(get_settings()); c = e.connect(); \
	   [print('  ', *r) for r in c.execute(text('SELECT score_date, status, rows_scored, model_version, airflow_dag_id FROM score_runs ORDER BY score_date, started_at'))]"; \
	 echo "== Airflow churn_weekly_drift for the week ending $(DEMO_WEEK_ENDING): Evidently report vs the champion's reference"; \
	 $(call dag_test,churn_weekly_drift,$$(date -u -d "$(DEMO_WEEK_ENDING) + 1 day" +%F)T03:00:00+00:00,drift-$(DEMO_WEEK_ENDING)); \
	 echo "== reports in the lake (Airflow UI: Browse > Churn reports, served by plugins/churn_reports.py)"; \
	 $(BIN)/python -c "from churn.lake import Lake; from churn.monitoring.reports import list_reports; from churn.settings import get_settings; \
	   [print('  ', r.kind, r.label, r.path) for r in list_reports(Lake.from_settings(get_settings())) if r.kind == 'drift']"; \
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

airflow: $(STAMP)  ## Start Airflow's components (LocalExecutor, metadata in the local PostgreSQL); print URL and login
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
	rm -rf $(LOCAL) data bench/data bench/results .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean  ## clean, and remove .venv
	rm -rf $(VENV)
