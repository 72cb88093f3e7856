# One task runner for humans and .ci/run. `make install` first; every target uses .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint typecheck test run bench clean

install:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

test:
	$(BIN)/pytest

run:
	$(BIN)/offload-bench run

bench:
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache reports/runs reports/latest
