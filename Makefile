# Set-up and the two README commands. `make demo` repairs the bundled demo stack;
# `make test` runs the fast test suite. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
CORES ?= all

.PHONY: setup demo test test-all bench

setup: $(VENV)/.installed

# torch goes in first, pinned, so that nothing pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) torch
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

demo: setup
	$(BIN)/snakemake --cores $(CORES)

test: setup
	$(BIN)/pytest -n auto

test-all: setup
	$(BIN)/pytest -n auto -m 'not gpu'

bench: setup
	$(BIN)/python benchmarks/bench_unet.py
