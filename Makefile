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

.PHONY: setup demo test test-fast bench chaos stream lint clean lock

setup: $(STAMP)
	@$(UDP) setup-jars

# Re-installs when the dependency pins change.
$(STAMP): pyproject.toml requirements.lock
	@command -v java >/dev/null || { echo "error: Java 17+ is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

demo: setup
	$(UDP) demo --people $(PEOPLE)

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

bench: setup
	$(PY) -m udp_spark.bench

# Kill -9 the stream at named crash points and restart it; checks nothing is lost or doubled.
KILLS ?= 10
chaos: setup
	$(PY) -m udp_spark.chaos --kills $(KILLS)

# The demo lakehouse kept current from data/demo's landing folders (Ctrl-C stops).
stream: setup
	$(UDP) stream

lint: setup
	$(VENV)/bin/ruff check udp_spark jobs tests
	$(VENV)/bin/mypy udp_spark

# Refresh the lock file after changing pyproject.toml.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^udp-spark' > requirements.lock

clean:
	rm -rf $(VENV) lakehouse data/demo spark-warehouse metastore_db derby.log mlruns .pytest_cache .mypy_cache .ruff_cache
