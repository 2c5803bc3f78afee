# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-all bench-storage clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,fast]'
	touch $(STAMP)

# Sets everything up, formats storage on first run and starts a local node.
run: $(STAMP)
	$(PY) -m tools.local_cluster up

# Sets everything up and runs the default test suite (pytest's exit 5, "no tests", counts as failure).
test: $(STAMP)
	$(PY) -m pytest -q tests

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow" tests

bench-storage: $(STAMP)
	$(PY) -m tools.storage_bench

clean:
	rm -rf $(VENV) *.egg-info
