"""The benchmark runs end to end at a tiny size and prints its table; no timing is asserted (CI is noisy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.common import REPO, probe_env

# Each runs a benchmark end to end in processes of its own (make test-slow).
pytestmark = pytest.mark.slow

SECTIONS = ("1. Upload", "2. Download", "3. Hook memory", "4. Import cost", "5. 10 triggers", "6. Uploads API")


@pytest.mark.timeout(480)
def test_benchmark_prints_its_table() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/run.py",
            "--size=1MiB",
            "--runs=1",
            "--memory-sizes=1MiB",
            "--multipart-size=8MiB",
            "--import-runs=1",
            "--triggers=10",
            "--poll-interval=0.5",
            "--part-latency=0.1",
        ],
        cwd=REPO,
        env=probe_env(),
        capture_output=True,
        text=True,
        timeout=450,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| Section | Measurement | Time (median) | vs curl | Peak RSS growth | Target | Result |" in out
    for section in SECTIONS:
        assert f"| {section}" in out, f"section {section!r} missing from:\n{out}"
    assert "(sha256 ok)" in out
    assert "targets checked" in out
