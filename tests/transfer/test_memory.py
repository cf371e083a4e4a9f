"""Uploads and downloads stream: a 256 MiB transfer must not grow the process by more than a few tens of MiB.

Measured in a fresh process (tests.support.memory_probe) against the loopback sink, so neither the
test runner's own memory nor the server's counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO, serve

MiB = 1024 * 1024
SIZE = 256 * MiB
LIMIT = 32 * MiB


def probe(*args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    import os

    out = subprocess.run(
        [sys.executable, "-m", "tests.support.memory_probe", *args],
        cwd=REPO,
        # A clean environment: what other tests left in os.environ must not change what is measured.
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": str(REPO),
            "AIRFLOW_HOME": str(REPO / ".pytest-airflow-home"),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sink() -> str:
    with serve("-m", "tests.support.sink") as (url, _):
        yield url


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    block = bytes(range(256)) * 4096
    with open(path, "wb") as handle:
        for _ in range(SIZE // MiB):
            handle.write(block)
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.slow
def test_upload_memory_is_bounded(sink: str, big_file: Path) -> None:
    result = probe("upload", sink, str(big_file))
    print(f"upload 256 MiB: rss growth {result['rss_growth'] / MiB:.1f} MiB in {result['seconds']:.2f}s")
    assert result["rss_growth"] < LIMIT


@pytest.mark.slow
def test_download_memory_is_bounded(sink: str, tmp_path: Path) -> None:
    dest = tmp_path / "down.bin"
    result = probe("download", sink, str(SIZE), env={"PROBE_DEST": str(dest)})
    print(f"download 256 MiB: rss growth {result['rss_growth'] / MiB:.1f} MiB in {result['seconds']:.2f}s")
    assert dest.stat().st_size == SIZE
    assert result["rss_growth"] < LIMIT
    dest.unlink()
