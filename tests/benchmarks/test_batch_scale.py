"""The batches-at-scale benchmark runs end to end at a tiny size and prints its figures; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.common import REPO, probe_env


@pytest.mark.timeout(240)
def test_batch_scale_benchmark_prints_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/batch_scale.py", "--lines=2500", "--batch-lines=1000", "--runs=1"],
        cwd=REPO,
        env=probe_env(),
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    [figures] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"run"')]
    assert figures["lines"] == figures["completed"] == 2500 and figures["batches"] == 3
    assert figures["usage"]["input_tokens"] > 0
    assert "median of 1: 2,500 requests" in done.stdout and "client RSS growth" in done.stdout
