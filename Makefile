# medlearn — setup, demo and tests from a fresh clone.
#   make demo   create .venv, install, run the imaging pipeline end to end
#   make test   create .venv, install, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_CONSTRAINTS ?= constraints/cpu.txt
STAMP := $(VENV)/.medlearn-installed

# Real data: ../shared/data when it exists (override by exporting MEDLEARN_DATA_DIR).
ifeq ($(origin MEDLEARN_DATA_DIR), undefined)
  ifneq ($(wildcard ../shared/data),)
    export MEDLEARN_DATA_DIR := $(abspath ../shared/data)
  endif
endif

.PHONY: install demo test test-all lint bench clean

$(STAMP): pyproject.toml $(TORCH_CONSTRAINTS) constraints/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(TORCH_CONSTRAINTS) torch
	$(BIN)/python -m pip install --quiet -c $(TORCH_CONSTRAINTS) -c constraints/lock.txt -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medlearn demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

test-all: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/imaging_classification.py

clean:
	rm -rf $(VENV) runs .pytest_cache
