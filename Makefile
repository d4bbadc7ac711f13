# One venv, torch's CPU wheel first (a plain `pip install torch` would fetch a multi-GB CUDA build).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# The CPU torch wheel lies in /opt/wheels on these machines; elsewhere pip takes it from PyPI.
PIP_FIND := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test test-all bench clean

$(BIN)/petcap: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(PIP_FIND) $(TORCH)
	$(BIN)/pip install -q $(PIP_FIND) -e '.[test]'
	touch $@

setup: $(BIN)/petcap

demo: setup
	$(BIN)/petcap demo

test: setup
	$(BIN)/python -m pytest -m "not slow and not gpu" -q

test-all: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf var .pytest_cache
