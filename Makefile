# Quick start: `make demo` runs both example pipelines (fine-tune, then batch) against the local emulator; `make test` runs
# lint, types and the whole test suite on the newest Airflow. Both build their own virtual
# environment in .venv. `make test-compat` runs the suite (minus `slow` tests) on the lowest
# declared Airflow with Python 3.10 and on the newest Airflow with Python 3.13, each in its own
# cached .venv-compat-* (see scripts/compat.py; a leg whose Python is missing is skipped, not failed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: venv lint typecheck test test-compat package-check demo bench clean

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
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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
