"""The vector store sync benchmark runs end to end at a tiny size and prints its figures; no timing is asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.common import REPO, probe_env


@pytest.mark.timeout(240)
def test_vector_store_benchmark_prints_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/vector_store_sync.py", "--files=40", "--runs=1"],
        cwd=REPO,
        env=probe_env(),
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "run 1: 40 files" in done.stdout
    assert "median of 1: first sync" in done.stdout and "client RSS growth" in done.stdout
