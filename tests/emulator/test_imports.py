"""The emulator's server runs in a subprocess of its own that must not load Airflow: Airflow's import
prints its configuration banner, takes seconds and memory, and an emulator that could reach the
provider's Airflow code could agree with the client's bugs. What it shares with the client is the
service's vocabulary (``resources/``, ``limits``) and the JSONL rules (``validation/``), all of which
must stay importable without Airflow. ``scripts/check_structure.py`` checks the imports statically;
this checks what an import really loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

RESOURCES = ("files", "batches", "fine_tuning", "vector_stores")


@pytest.mark.parametrize(
    "module",
    [
        "airflow_openai_files.emulator.core.app",
        "airflow_openai_files.limits",
        *(f"airflow_openai_files.resources.{name}" for name in RESOURCES),
    ],
)
def test_importing_does_not_load_airflow(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(name for name in sys.modules if name == 'airflow' or name.startswith('airflow.'))\n"
        "print(' '.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "", f"importing {module} loaded {done.stdout.strip()}"
