"""Start loopback helper processes that announce their URL on stdout, and stop them."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_URL = re.compile(r"(http://127\.0\.0\.1:\d+/v1)")


@contextlib.contextmanager
def serve(*args: str, timeout: float = 30.0) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``python args...`` and yield (base URL, process) once it prints its loopback URL."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # blocks until the child prints its address (or exits)
            match = _URL.search(line)
            if match:
                yield match.group(1), proc
                break
        else:
            raise RuntimeError(f"{args} exited with {proc.wait(timeout)} before announcing its URL")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
