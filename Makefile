# Every target creates .venv and installs what it needs: nothing has to be installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: test lint unit install dist bench demo airflow cluster postgresql redis reliability chromium test-matrix clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv

# Re-install whenever pyproject.toml or the version (read from __init__.py into the package metadata) changes.
$(STAMP): pyproject.toml airflow_provider_conversations/__init__.py | $(BIN)/python
	$(BIN)/uv pip install -q -p $(BIN)/python -e '.[test]' || $(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

# The sdist and the wheel users install, into dist/ (the `build` frontend, its isolated build env made by uv);
# twine checks their metadata; the wheel's files are listed and checked against the checkout (tests/wheel_contents.py).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --installer uv --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(BIN)/python -m tests.wheel_contents dist/*.whl

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_conversations tests dags_examples benchmarks tools
	$(BIN)/mypy

# Debian's Chromium for the browser check of the Airflow UI (tests/e2e/test_browser.py), installed if missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the UI check"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Debian's PostgreSQL 15 server binaries for `make cluster` and tests/e2e/test_cluster.py, installed if missing.
postgresql:
	@test -x /usr/lib/postgresql/15/bin/initdb || { \
		echo "Installing Debian's postgresql-15 for the cluster's metadata database"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql-15 >/dev/null; }

# Debian's redis-server for the cluster's broker and the shared rate budget tests, installed if missing.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "Installing Debian's redis-server"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }

# The whole suite: unit, simulator, DAG-level, fault-injection and end-to-end tests (a real airflow standalone
# driven through its REST API and a headless browser, and the CeleryExecutor cluster of `make cluster`), and the wheel test (the built wheel installed in a kept
# virtualenv under .scratch/, tests/test_wheel.py).
test: lint chromium postgresql redis
	$(BIN)/pytest

# The main job on a fresh clone: example DAGs against the five simulators in a scratch SQLite Airflow,
# a summary table, and a check against the simulators' ground truth.
demo: $(STAMP)
	$(BIN)/python -m tools.demo run

# A real Airflow (standalone: scheduler, dag-processor, api-server, triggerer) on http://127.0.0.1:8080 with the
# simulators, connections and example DAGs. Ctrl-C stops everything.
airflow: $(STAMP)
	$(BIN)/python -m tools.demo standalone --port $(or $(PORT),8080)

# A real CeleryExecutor cluster on http://127.0.0.1:8080: PostgreSQL 15 metadata DB and Redis broker in
# .scratch/cluster, api-server, scheduler, dag-processor, triggerer, two Celery workers, the simulators,
# connections and example DAGs. Ctrl-C stops everything; it stops by itself after MINUTES (240).
cluster: $(STAMP) postgresql redis
	$(BIN)/python -m tools.cluster run --port $(or $(PORT),8080) --minutes $(or $(MINUTES),240)

# Fault-injection runs at a larger scale than CI: per vendor (and PolyAI v1) 200 one-hour windows, 5,000
# conversations, 15% of requests drawing a fault (5xx in bursts of 3), inserts/updates during the walks,
# seeds 1-3; prints the markdown table the README shows (about 6 minutes on 2 cores).
reliability: $(STAMP)
	$(BIN)/python -m tools.reliability --scale full $(RELIABILITY_ARGS)

# Quick loop while developing: everything but the real-Airflow end-to-end tests and the wheel test.
unit: $(STAMP)
	$(BIN)/pytest -m "not e2e and not wheel"

$(BENCH_STAMP): pyproject.toml airflow_provider_conversations/__init__.py | $(BIN)/python
	$(BIN)/uv pip install -q -p $(BIN)/python -e '.[test,bench]' || $(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@ $(STAMP)

# Benchmarks are not tests: every contender against the same simulator, targets checked (several minutes).
bench: $(BENCH_STAMP) redis
	RUNTIME__DLTHUB_TELEMETRY=false $(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# The unit, simulator and DAG-level tests on the apache-airflow floor of pyproject.toml and on the newest 3.x,
# each in its own venv under .scratch/.
AIRFLOW_FLOOR  ?= 3.3.0
AIRFLOW_NEWEST ?= 3.3.2
test-matrix:
	@for v in $(AIRFLOW_FLOOR) $(AIRFLOW_NEWEST); do \
		venv=.scratch/venv-airflow-$$v; \
		echo "=== apache-airflow==$$v ($$venv)"; \
		test -x $$venv/bin/python || $(PYTHON) -m venv $$venv || exit 1; \
		$$venv/bin/python -m pip install -q uv || exit 1; \
		$$venv/bin/uv pip install -q -p $$venv/bin/python -e '.[test]' "apache-airflow==$$v" || exit 1; \
		AIRFLOW_HOME=$$(mktemp -d) $$venv/bin/pytest -q -p no:cacheprovider -m "not e2e and not wheel" || exit 1; \
	done

clean:
	rm -rf $(VENV) .scratch .pytest_cache .mypy_cache .ruff_cache dist build *.egg-info
