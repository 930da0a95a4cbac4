# China-tech market-data warehouse. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
AIRFLOW_ENV := source etl/airflow_env.sh
DEMO_START ?= 2025-09-01
DEMO_END ?= 2025-09-30
START ?= $(shell date -u -d '7 days ago' +%F)
END ?= $(shell date -u +%F)

.PHONY: help venv install airflow-init demo test test-production test-ducklake test-fast bench bench-smoke bench-backends lint airflow run sql report export ui-check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[airflow,production,dev]'
	touch $@

venv: $(VENV)/.installed ## create .venv and install the project with Airflow and test tools

airflow-init: venv ## local Airflow home in ./airflow_home (SQLite, LocalExecutor, no examples) + the writer pool
	@$(AIRFLOW_ENV) && mkdir -p "$$AIRFLOW_HOME" && airflow db migrate > "$$AIRFLOW_HOME/migrate.log" 2>&1 \
	  && airflow pools set warehouse_writer 1 "one task at a time publishes the warehouse" > /dev/null 2>&1 \
	  && airflow dags reserialize > /dev/null 2>&1 && echo "Airflow home: $$AIRFLOW_HOME"

demo: airflow-init ## offline demo: both market DAGs through `airflow dags test` on the sample source, Sept 2025
	@$(AIRFLOW_ENV) && for dag in market_daily_xhkg market_daily_us; do \
	  echo "== airflow dags test $$dag ($(DEMO_START)..$(DEMO_END), sample source)"; \
	  airflow dags test $$dag $(DEMO_END) \
	    -c '{"source": "sample", "start": "$(DEMO_START)", "end": "$(DEMO_END)"}' > "$$AIRFLOW_HOME/demo-$$dag.log" 2>&1 \
	    || { tail -40 "$$AIRFLOW_HOME/demo-$$dag.log"; exit 1; }; \
	  grep -o 'DagRun Finished: dag_id=[a-z_]*.*state=[a-z]*' "$$AIRFLOW_HOME/demo-$$dag.log" | sed 's/logical_date.*state=/state=/'; \
	done
	@$(BIN)/python -m etl.demo_summary

test: venv ## the whole suite (unit, SQL, DAG integrity, pipeline, replay of real files, Airflow end to end)
	GX_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q -m "not production"

test-production: venv ## PostgreSQL + CeleryExecutor + Redis: both market DAGs at once, a reader, equality (~2.5-5 min)
	GX_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q -m production tests/production

test-ducklake: venv ## the DuckLake backend alone (catalog in PostgreSQL on 127.0.0.1; also part of `make test`)
	GX_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q tests/integration/test_ducklake_store.py \
	  tests/integration/test_ducklake_pipeline.py

test-fast: venv ## everything except the Airflow end-to-end tests
	GX_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q -m "not e2e"

SECURITIES ?= 5000
YEARS ?= 20
bench: venv ## benchmark at scale (SECURITIES=5000 YEARS=20): backfill vs DuckDB floor, daily increment, Airflow; bench/results.json
	GX_ANALYTICS_ENABLED=false $(BIN)/python -m etl.benchmark --securities $(SECURITIES) --years $(YEARS)

bench-smoke: venv ## the benchmark at a tiny size (40 securities x 30 days, no Airflow), to bench/work/smoke-results.json
	GX_ANALYTICS_ENABLED=false $(BIN)/python -m etl.benchmark --securities 40 --days 30 --no-airflow \
	  --work bench/work/smoke --out bench/work/smoke-results.json

bench-backends: venv ## publish time of a daily run on the file store vs DuckLake (needs PostgreSQL), to build/bench-backends
	GX_ANALYTICS_ENABLED=false ETL_LOG_LEVEL=WARNING $(BIN)/python -m etl.bench_backends build/bench-backends

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

ui-check: venv ## the Airflow UI in headless Chromium: login, run market_daily_xhkg, screenshot data/ui-check/grid.png
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium (apt-get)"; $(SUDO) apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium > /dev/null; }
	$(BIN)/python etl/deploy/ui_check.py

lint: venv ## ruff
	$(BIN)/ruff check etl dags tests

airflow: airflow-init ## airflow standalone on http://localhost:8080 with the project's DAGs; prints the login
	@$(AIRFLOW_ENV) && echo "Starting Airflow on http://localhost:$$AIRFLOW__API__PORT (Ctrl-C stops it)" \
	  && ( sleep 25; f="$$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"; \
	       [ -f "$$f" ] && echo "Login (user: password): $$(cat $$f)" ) & \
	  $(AIRFLOW_ENV) && exec airflow standalone

run: venv ## live yfinance for the configured universe, START..END (default: the last 7 days); needs internet
	$(BIN)/python -m etl run --source yfinance --start $(START) --end $(END)

# The published warehouse, as the pipeline resolves it (ETL_WAREHOUSE, else ETL_DATA_DIR/warehouse.duckdb).
WAREHOUSE ?= $(or $(ETL_WAREHOUSE),$(or $(ETL_DATA_DIR),data)/warehouse.duckdb)

sql: venv ## DuckDB CLI on the published warehouse, read-only (fine during a DAG run); Q='select ...' runs one query
ifeq ($(ETL_WAREHOUSE_BACKEND),ducklake)
	@mkdir -p build && $(BIN)/python -m etl lake-sql > build/lake-init.sql
	@if [ -n "$(Q)" ]; then $(BIN)/duckdb -init build/lake-init.sql -c "$(Q)"; \
	 else echo "DuckDB CLI on the DuckLake (read-only). Try: .tables   .read sql/analysis/06_adr_premium.sql"; \
	      $(BIN)/duckdb -init build/lake-init.sql; fi
else
	@test -f "$(WAREHOUSE)" || { echo "no warehouse at $(WAREHOUSE) yet: run 'make demo' first"; exit 1; }
	@if [ -n "$(Q)" ]; then $(BIN)/duckdb -readonly "$(WAREHOUSE)" -c "$(Q)"; \
	 else echo "DuckDB CLI on $(WAREHOUSE) (read-only). Try: .tables   .read sql/analysis/06_adr_premium.sql   .quit"; \
	      $(BIN)/duckdb -readonly "$(WAREHOUSE)"; fi
endif

report: venv ## write the HTML report of the published warehouse to data/report/latest.html
	$(BIN)/python -m etl report

export: venv ## rebuild the Parquet export of the current publish under data/export/current
	$(BIN)/python -m etl export

clean: ## remove data/ and airflow_home/ (the venv stays)
	rm -rf data airflow_home
