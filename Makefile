# Quick start: `make demo` runs every example pipeline (scripts/demo.py) against the local emulator;
# `make test` runs lint, types and the test suite (minus the `slow` tests, on two processes with
# pytest-xdist) on the newest Airflow; `make test-slow` runs the `slow` tests (large files, memory
# probes, Airflow's own processes; CI runs both). Both build their own virtual environment in .venv.
# `make test-compat` runs the suite (minus `slow` tests) on the lowest
# declared Airflow with Python 3.10 and on the newest Airflow with Python 3.13, each in its own
# cached .venv-compat-* (see scripts/compat.py; a leg whose Python is missing is skipped, not failed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (each has its own emulators, temp dirs and Airflow database).
PYTEST_WORKERS ?= 2

.PHONY: venv lint typecheck test test-slow test-compat package-check demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check airflow_openai_files dags_examples tests benchmarks scripts
	$(BIN)/ruff format --check airflow_openai_files dags_examples tests benchmarks scripts
	$(BIN)/python scripts/check_structure.py

typecheck: venv
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

# One process: these tests measure memory or run Airflow's own processes, and would only compete.
test-slow: venv
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-compat:
	$(PYTHON) scripts/compat.py

# Build the sdist and wheel, twine-check them, install the wheel into a clean cached venv outside the
# checkout (newest Airflow and Python, pinned by constraints/), run a smoke DAG and `airflow providers list`
# from that install (see scripts/package_check.py).
package-check: venv
	$(BIN)/python scripts/package_check.py

demo: venv
	$(BIN)/python scripts/demo.py

bench: venv
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-compat-* .pytest_cache .mypy_cache .ruff_cache

include mk/distributed.mk
