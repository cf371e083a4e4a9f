"""The batch benchmark runs end to end at a tiny size and prints its table; no timing is asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.common import REPO, probe_env

# Each runs a benchmark end to end in processes of its own (make test-slow).
pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
def test_batch_benchmark_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/batches.py", "--lines=300", "--output-size=2MB"],
        cwd=REPO,
        env=probe_env(),
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| Batch end to end | 300 requests" in out
    assert "+ join_by_custom_id of 300 results (300 answered)" in out
    assert "| Output download | the same file with curl -o" in out
    assert "**MISS**" not in out, out
