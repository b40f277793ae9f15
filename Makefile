# udp-spark developer commands. `make demo` and `make test` set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UDP := $(VENV)/bin/udp
STAMP := $(VENV)/.udp-setup-done
PEOPLE ?= 20000
# Test processes (pytest-xdist, whole files per process): Spark spends much of a small test
# waiting on the driver, so two processes use two cores better than one.
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast bench chaos stream serve cluster-demo lint clean lock

setup: $(STAMP)
	@$(UDP) setup-jars

# Re-installs when the dependency pins change.
$(STAMP): pyproject.toml requirements.lock
	@command -v java >/dev/null || { echo "error: Java 17+ is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev,bench]'
	touch $@

demo: setup
	$(UDP) demo --people $(PEOPLE)

# --no-loadscope-reorder: pytest-xdist would otherwise hand out files by their number of
# tests, not in the longest-first order tests/conftest.py sets.
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

test-fast: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow"

bench: setup
	$(PY) -m udp_spark.bench

# Kill -9 every stage (batch and stream) after each of its commits, mid-write and at random
# moments, re-run it and compare with an uninterrupted run read with delta-rs (JSON report,
# exit 1 on any difference; about 45 min: docs/reliability.md). CHAOS_ARGS="--stages resolve"
# for a subset.
CHAOS_ARGS ?=
chaos: setup
	$(PY) -m udp_spark.chaos $(CHAOS_ARGS)

# The demo lakehouse kept current from data/demo's landing folders (Ctrl-C stops).
stream: setup
	$(UDP) stream

# The Profile API over the demo lakehouse (docs/api.md: keys, roles, curl examples).
serve: setup
	$(UDP) serve

# The whole pipeline (`udp run`) with spark-submit on a Spark standalone cluster started
# here: a master and two workers, executors in their own JVMs (docs/workflows.md).
CLUSTER_DIR ?= /tmp/udp-cluster
CLUSTER_PEOPLE ?= 2000
cluster-demo: setup
	$(UDP) generate --people $(CLUSTER_PEOPLE) --out data/cluster-demo
	@set -e; export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; rm -rf $(CLUSTER_DIR); \
	python -m udp_spark.platform.standalone $(CLUSTER_DIR) & pid=$$!; trap "kill $$pid" EXIT; \
	while [ ! -f $(CLUSTER_DIR)/master_url ]; do kill -0 $$pid; sleep 1; done; \
	spark-submit --master "$$(cat $(CLUSTER_DIR)/master_url)" $$(udp submit-args) \
	  jobs/run.py --config conf/pipeline.yaml --data-root data/cluster-demo \
	  --lakehouse lakehouse-cluster

lint: setup
	$(VENV)/bin/ruff check udp_spark jobs tests
	$(VENV)/bin/mypy udp_spark

# Refresh the lock file after changing pyproject.toml.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^udp-spark' > requirements.lock

clean:
	rm -rf $(VENV) lakehouse lakehouse-cluster data/demo data/cluster-demo spark-warehouse metastore_db derby.log mlruns .pytest_cache .mypy_cache .ruff_cache
