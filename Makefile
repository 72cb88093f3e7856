# One task runner for humans and .ci/run. `make install` first; every target uses .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint typecheck test test-repeat run bench schema clean

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

# flake hunt: the suite N times, each in a new random order; prints every test that failed with its seeds
N ?= 5
test-repeat:
	$(BIN)/python scripts/test_repeat.py $(N) -- $(PYTEST_ARGS)

run:
	$(BIN)/offload-bench run

# every goal a ratio against a peer run alongside (alternating pairs, median + 95 % interval, verdict); exits 1
# only on a missed goal. A machine shared with other heavy runs: make bench BENCH_ARGS="--lock /tmp/ob-heavy.lock"
# (each benchmark under `flock FILE`); one benchmark: BENCH_ARGS="--only worker". Under 10 minutes.
# + the queue shoot-out (issue 21.5, ~13 min on its own): make bench QUEUES=1 QUEUES_ARGS="--lock /tmp/ob-heavy.lock"
bench:
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)
	$(if $(QUEUES),$(BIN)/python benchmarks/bench_queues.py $(QUEUES_ARGS))

# After changing runfolder/summary.py: rewrite the committed JSON Schema (tests/runfolder checks it is current).
schema:
	$(BIN)/python -m runfolder.summary > runfolder/summary.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache reports/runs reports/latest
