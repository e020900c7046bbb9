# The two commands of the quick start are `make demo` and `make test`; both install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
Q ?=
.DEFAULT_GOAL := help

.PHONY: help install demo simulate test test-unit fault-matrix bench bench-large bench-clean bench-notify bench-recs bench-item-models bench-coldstart bench-intent bench-push bench-stages bench-stream evaluate lint fix db psql down airflow up clean-local stream report erase-user

$(STAMP): requirements.txt requirements-dev.txt constraints.txt scripts/bootstrap.sh
	@scripts/bootstrap.sh

## help: every target with its line (the default target)
help:
	@awk '/^## [a-z-]+: / { line = substr($$0, 4); cut = index(line, ": "); printf "  %-18s %s\n", substr(line, 1, cut - 1), substr(line, cut + 2) }' $(MAKEFILE_LIST)

## install: the venv with the pinned requirements (demo and test do it themselves)
install: $(STAMP)

## demo: embedded PostgreSQL + synthetic data + Airflow running the real DAGs, then a summary
demo: $(STAMP)
	@$(PY) -m devenv.demo

## test: unit, DAG-integrity and integration tests on real PostgreSQL, Spark and Airflow
test: $(STAMP)
	@$(PY) -m pytest

## test-unit: the unit and DAG-integrity tests only
test-unit: $(STAMP)
	@$(PY) -m pytest tests/unit tests/dags

## fault-matrix: the fault matrix's tests (kill -9, database restarts, providers down) with 20 trials each (TRIALS=)
fault-matrix: $(STAMP)
	@FAULT_TRIALS=$(or $(TRIALS),20) $(PY) -m pytest -s tests/integration/test_fault_matrix.py \
		"tests/integration/test_publish.py::test_a_publish_killed_during_its_copy_or_swap_leaves_one_complete_live_set"

## bench: every benchmark at a small scale, in minutes (the figures in docs/ come from bench-large)
bench: $(STAMP)
	@$(PY) -m benchmarks.daily_dag --users $(or $(USERS),500) --items $(or $(ITEMS),300) --days $(or $(DAYS),7)
	@$(MAKE) --no-print-directory bench-clean EVENTS="100000 1000000"
	@$(MAKE) --no-print-directory bench-notify USERS=10000 NAIVE=1000
	@$(MAKE) --no-print-directory bench-recs USERS=10000 ITEMS=2000 RECIPE=50
	@$(MAKE) --no-print-directory bench-item-models ITEMS=10000
	@$(MAKE) --no-print-directory bench-coldstart
	@$(MAKE) --no-print-directory bench-intent
	@$(MAKE) --no-print-directory bench-push MESSAGES=2000
	@$(MAKE) --no-print-directory bench-stages EVENTS="100000 1000000"
	@$(MAKE) --no-print-directory bench-stream RATES=1000 SECONDS=30

## bench-large: every benchmark at the sizes docs/benchmarks.md reports (10^6 and 10^7 events: hours)
bench-large: $(STAMP)
	@$(PY) -m benchmarks.daily_dag --users 2000 --items 1000 --days 14
	@$(MAKE) --no-print-directory bench-clean
	@$(MAKE) --no-print-directory bench-notify
	@$(MAKE) --no-print-directory bench-recs
	@$(MAKE) --no-print-directory bench-item-models
	@$(MAKE) --no-print-directory bench-coldstart USERS=3000 ITEMS=2000
	@$(MAKE) --no-print-directory bench-stages
	@$(MAKE) --no-print-directory bench-stream

## bench-clean: cleaning events/s at 10^6 and 10^7 events, Spark vs the same rules in pandas and vs a bare Spark pass (EVENTS="1000000 10000000")
bench-clean: $(STAMP)
	@$(PY) -m benchmarks.clean --events $(or $(EVENTS),1000000 10000000)

## bench-notify: decisions/s of the notification policy engine vs a per-row loop (USERS=, CANDIDATES=, NAIVE=, SEED=)
bench-notify: $(STAMP)
	@$(PY) -m benchmarks.notify --users $(or $(USERS),100000) --candidates-per-user $(or $(CANDIDATES),5) \
		--naive-sample $(or $(NAIVE),3000) --seed $(or $(SEED),42)

## bench-recs: top-N users/s (blocked scorer vs Surprise's FAQ recipe vs bare GEMM), publish rows/s vs to_sql (USERS=, ITEMS=, RECIPE=)
bench-recs: $(STAMP)
	@$(PY) -m benchmarks.recs --users $(or $(USERS),100000) --items $(or $(ITEMS),10000) \
		--recipe-users $(or $(RECIPE),100)

## bench-coldstart: new items, new users and fold-in vs their yardsticks on a planted-taste world (USERS=, ITEMS=)
bench-coldstart: $(STAMP)
	@$(PY) -m benchmarks.coldstart --users $(or $(USERS),600) --items $(or $(ITEMS),400)

## bench-intent: intent weights chosen on validation vs the defaults, with and without a dwell signal (USERS=, ITEMS=)
bench-intent: $(STAMP)
	@$(PY) -m benchmarks.intent --users $(or $(USERS),1500) --items $(or $(ITEMS),400)

## bench-push: relay messages/s through FCM, APNs and Web Push adapters to local providers, beside the file sink (MESSAGES=)
bench-push: $(STAMP)
	@$(PY) -m benchmarks.push --messages $(or $(MESSAGES),10000)

## bench-item-models: seconds and peak memory of fitting EASE, item-kNN and SVD at 10^4 and 10^5 items (ITEMS="10000 100000")
bench-item-models: $(STAMP)
	@$(PY) -m benchmarks.item_models --items $(or $(ITEMS),10000 100000)

## bench-stages: seconds, events/s and peak memory (driver + Spark JVM) of profiles, segments, training and scoring (EVENTS="1000000 10000000")
bench-stages: $(STAMP)
	@$(PY) -m benchmarks.stages --events $(or $(EVENTS),1000000 10000000)

## bench-stream: the real-time path's file-landing -> decision latency (p50/p95/max) at sustained rates (RATES="1000 10000", SECONDS=60, TRIGGER=1)
bench-stream: $(STAMP)
	@$(PY) -m benchmarks.stream --rate $(or $(RATES),1000 10000) --seconds $(or $(SECONDS),60) \
		--trigger-seconds $(or $(TRIGGER),1)

## stream: the real-time trigger job in the foreground against the embedded database (TRIGGER=seconds)
stream: $(STAMP) db
	@$(PY) -m jobs.stream.job --trigger-seconds $(or $(TRIGGER),5)

## simulate: the real DAGs day after day against shoppers who answer; policies compared (DAYS=14 USERS=2000 SEED=42 VARIANTS=fixed|thompson)
simulate: $(STAMP)
	@$(PY) -m simulation.closed_loop --days $(or $(DAYS),14) --users $(or $(USERS),2000) --seed $(or $(SEED),42) \
		--variant-allocation $(or $(VARIANTS),fixed)

## evaluate: run a public rating file (user item rating timestamp) through the recommendation code
evaluate: $(STAMP)
	@test -n "$(RATINGS)" || { echo 'usage: make evaluate RATINGS=path/to/u.data [K=10] [SEED=42]'; exit 2; }
	@$(PY) -m evaluation.ratings "$(RATINGS)" --k $(or $(K),10) --seed $(or $(SEED),42)

## lint: ruff check, ruff format --check, import contracts and sqlfluff
lint: $(STAMP)
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	@$(VENV)/bin/lint-imports --no-cache
	@$(VENV)/bin/sqlfluff lint sql --processes 2

## fix: ruff and sqlfluff fixes and formatting, applied
fix: $(STAMP)
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
	@$(VENV)/bin/sqlfluff fix sql --processes 2

## db: start the embedded PostgreSQL (migrated)
db: $(STAMP)
	@$(PY) -m devenv.localdb start

## psql: interactive psql on the pipeline database, or one query with Q="SELECT ..."
psql: $(STAMP)
	@$(PY) -m devenv.localdb psql $(if $(Q),"$(Q)",)

## down: stop Airflow started by `make airflow`, the embedded PostgreSQL and a `make up` deployment
down:
	@if [ -x $(PY) ]; then $(PY) -m devenv.airflow_env --stop; $(PY) -m devenv.localdb stop; fi
	@if docker compose version >/dev/null 2>&1; then docker compose -f docker/compose.yaml down; fi

## airflow: the Airflow UI (airflow standalone) on 127.0.0.1:8080 against the same config
airflow: $(STAMP) db
	@$(PY) -m devenv.airflow_env airflow standalone

## up: PostgreSQL + Airflow + Spark in docker compose (needs a Docker engine)
up:
	docker compose -f docker/compose.yaml up -d --build

## clean-local: stop everything, then delete .local (the embedded database, lake, landing zone)
clean-local: down
	rm -rf .local

## report: the evaluation report (HTML with plots) of what is in the database (OUT=path, UNTIL=ISO time)
report: $(STAMP) db
	@$(PY) -m jobs.report $(if $(OUT),--out "$(OUT)",) $(if $(UNTIL),--until "$(UNTIL)",)

## erase-user: remove a user from every table, the lake and future sends (USER=<user id>, given on the command line)
erase-user: $(STAMP) db
	@test "$(origin USER)" = "command line" -a -n "$(USER)" || { echo 'usage: make erase-user USER=<user id>'; exit 2; }
	@$(PY) -m jobs.privacy.erase --user-id "$(USER)"
