"""The emulator benchmark script still runs (tiny sizes; the figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Each runs a benchmark end to end in processes of its own (make test-slow).
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_emulator.py"


def test_bench_emulator_runs_with_tiny_sizes() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "1MiB", "--files", "300", "--runs", "1", "--list-runs", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| ingest (POST /files), 1 MiB |" in result.stdout
    assert "| list limit=100, first page (desc) |" in result.stdout
